/**
 * JobRunner on the worker's own machine: each job is a Python subprocess speaking the recipe
 * protocol (workers/recipes/PROTOCOL.md):
 *
 *   <python> <recipesDir>/<recipe>.py --spec <workDir>/spec.json --out <outDir>
 *
 * - The recipe runs in a process group of its own (`detached`), so that cancelling a job can kill
 *   everything it started (tokenizer pools, dataloader workers, compilers), not just the leader.
 * - Its environment is allow-listed (`recipeEnvironment`): the worker's PATH, HOME, locale,
 *   temporary directory and the HF_*, TRANSFORMERS_*, OMP/MKL, CUDA_*, NCCL_*, PYTHON* and
 *   torch variables, never anything whose name says it is a secret (tokens, keys, passwords) and
 *   nothing else (no W&B, AWS or Temporal settings); then the job's own `env` (e.g. WANDB_* for a
 *   job that logs to W&B), then HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1, HF_DATASETS_OFFLINE=1,
 *   PYTHONUNBUFFERED=1, FORGELINE_EXIT_WITH_PARENT=1 (the recipe ends its group if this worker
 *   dies, so no orphan keeps a GPU) and CUDA_VISIBLE_DEVICES set to the job's GPUs ('' on cpu,
 *   which hides every GPU).
 * - spec.json is written to a private temporary directory that is also the working directory, so
 *   nothing but the recipe's own output lands in `outDir` (which gets published afterwards); it
 *   is removed when the job ends.
 * - stdout lines that are protocol events go to `onEvent`, in order (async handlers are awaited
 *   one after the other); every other line (plain text, malformed JSON, JSON that is not an
 *   event) and all of stderr go to `onLog`. The last stderr lines are kept for error messages.
 *   An event of a known kind whose fields break its schema (src/contracts/recipes/events.ts)
 *   stops the recipe: a terminal RecipeFailedError of type RecipeContract naming the field. So
 *   does a `checkpoint` whose path leads out of `outDir` (`../x`, an absolute path, a symlink).
 * - A job with `progressTimeoutMs` whose recipe prints no event for that long is stopped as hung:
 *   a retryable RecipeCrashedError.
 * - `preempt()` (a worker shutting down) asks every running recipe to checkpoint and exit: SIGUSR1
 *   to its group; a recipe that did exits 75 and the job rejects with a retryable
 *   RecipePreemptedError (after its checkpoint event was handled). New jobs are refused the same way.
 *
 * Outcomes: exit 0 with a `result` event resolves with its payload. Exit 2 rejects with a
 * terminal RecipeFailedError carrying the type and message of the recipe's `error` event; exit 0
 * without a result is a protocol violation, also terminal. Any other exit or a signal rejects
 * with a retryable RecipeCrashedError that includes the stderr tail. An abort rejects with the
 * signal's reason. In every case the promise settles only once no process of the job's group is
 * left: after the leader exits, stragglers get SIGTERM and, after the grace period, SIGKILL.
 * (A process that moves itself into another group or session escapes, as it would any
 * supervisor.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorType } from '../contracts/errors';
import type { JobRunner, JobSpec } from '../ports/job-runner';
import {
  abortReason,
  DEFAULT_STDERR_TAIL_LINES,
  EXIT_PREEMPTED,
  readLines,
  RECIPE_NAME,
  recipeOutcome,
  RecipeOutput,
  RecipeFailedError,
  RecipePreemptedError,
  type RecipeRunDetails,
} from './recipe-run';

// The protocol's pieces every runner shares live in recipe-run.ts; re-exported for existing importers.
export {
  DEFAULT_STDERR_TAIL_LINES,
  EXIT_PREEMPTED,
  parseEventLine,
  pathOutside,
  RecipeCrashedError,
  recipeErrorType,
  RecipeFailedError,
  RecipeOutput,
  recipeOutcome,
  RecipePreemptedError,
  type RecipeEnding,
  type RecipeRunDetails,
} from './recipe-run';

export interface LocalJobRunnerOptions {
  /** Python interpreter, normally the venv's (`<venv>/bin/python`). */
  python: string;
  /** Directory holding `<recipe>.py`, normally workers/recipes. */
  recipesDir: string;
  /** How long a process gets between SIGTERM and SIGKILL. Default 10 s. */
  killGraceMs?: number;
  /** Base environment of every recipe. Default: this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Where per-job temporary directories (spec.json, working directory) go. Default: the OS's. */
  tempDir?: string;
  /** stderr lines kept for error messages. Default 50. */
  stderrTailLines?: number;
}

export const DEFAULT_KILL_GRACE_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

/** Variables a recipe may take from the worker's environment, by name... */
const RECIPE_ENV_NAMES = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR', 'TEMP', 'TMP', 'LD_LIBRARY_PATH', 'VIRTUAL_ENV', 'XDG_CACHE_HOME', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'TOKENIZERS_PARALLELISM', 'FORGELINE_CPU_THREADS']);
/** ...and by prefix: locale, Hugging Face caches and modes, thread pools, CUDA/NCCL, Python, torch. */
const RECIPE_ENV_PREFIXES = ['LC_', 'HF_', 'TRANSFORMERS_', 'OMP_', 'MKL_', 'KMP_', 'OPENBLAS_', 'CUDA_', 'NCCL_', 'NVIDIA_', 'PYTHON', 'TORCH', 'PYTORCH_', 'TRITON_'];
/** Never passed on from the worker, whatever the prefix (HF_TOKEN, a *_API_KEY, ...). */
const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|ACCESS_KEY|PRIVATE_KEY/i;

/**
 * What a recipe sees: the allow-listed part of the worker's environment (`base`), the job's own
 * `extra` variables, and the runner's fixed settings (offline hubs, unbuffered output, exit with
 * the worker, the job's GPUs).
 */
export function recipeEnvironment(base: NodeJS.ProcessEnv, extra: Record<string, string> | undefined, gpuIndices: number[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined || SECRET_NAME.test(name)) continue;
    if (RECIPE_ENV_NAMES.has(name) || RECIPE_ENV_PREFIXES.some((p) => name.startsWith(p))) env[name] = value;
  }
  return {
    ...env,
    ...extra,
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    HF_DATASETS_OFFLINE: '1',
    PYTHONUNBUFFERED: '1',
    // Recipes built on forgeline_recipes.protocol end their process group if this worker dies.
    FORGELINE_EXIT_WITH_PARENT: '1',
    CUDA_VISIBLE_DEVICES: gpuIndices.join(','),
  };
}

// ---------------------------------------------------------------------------------------------
// Process groups
// ---------------------------------------------------------------------------------------------

/**
 * True while a process other than a zombie is in process group `pgid`. On Linux this reads
 * /proc, because orphans adopted by an init that never reaps (node or a bare supervisor as PID 1
 * in a container) stay zombies, which `kill(-pgid, 0)` would still count.
 */
export function processGroupAlive(pgid: number): boolean {
  if (existsSync('/proc/self/stat')) {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // exited while we looked
      }
      // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
    }
    return false;
  }
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* the group is gone already */
  }
}

// ---------------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------------

export class LocalJobRunner implements JobRunner {
  private readonly killGraceMs: number;
  private readonly stderrTailLines: number;
  /** Process groups of the recipes running now. */
  private readonly running = new Set<number>();
  private preempting = false;

  constructor(private readonly options: LocalJobRunnerOptions) {
    this.killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.stderrTailLines = options.stderrTailLines ?? DEFAULT_STDERR_TAIL_LINES;
  }

  async run(job: JobSpec): Promise<Record<string, unknown>> {
    const { recipe } = job;
    const notStarted: RecipeRunDetails = { recipe, exitCode: null, signal: null, stderrTail: [] };
    if (!RECIPE_NAME.test(recipe)) {
      throw new RecipeFailedError(ErrorType.InvalidSpec, `invalid recipe name ${JSON.stringify(recipe)}: expected the file name of a recipe without .py, e.g. trl-sft-lora`, notStarted);
    }
    const script = path.join(this.options.recipesDir, `${recipe}.py`);
    if (!existsSync(script)) {
      throw new RecipeFailedError(ErrorType.InvalidSpec, `unknown recipe ${JSON.stringify(recipe)}: ${script} does not exist`, notStarted);
    }
    if (job.signal?.aborted) throw abortReason(job.signal);
    if (this.preempting) throw new RecipePreemptedError(`recipe ${recipe} not started: this worker is shutting down; a retry runs it elsewhere`, notStarted);

    await mkdir(job.outDir, { recursive: true });
    const workDir = await mkdtemp(path.join(this.options.tempDir ?? os.tmpdir(), `forgeline-job-${recipe}-`));
    try {
      const specFile = path.join(workDir, 'spec.json');
      // The protocol promises every recipe a `device`; the caller's value wins when it set one.
      const spec = { device: job.gpuIndices.length ? 'cuda' : 'cpu', ...job.input };
      await writeFile(specFile, `${JSON.stringify(spec, null, 2)}\n`);
      return await this.supervise(job, script, specFile, workDir);
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  }

  /**
   * For a worker that is shutting down: asks every running recipe to save a checkpoint and exit
   * (SIGUSR1 to its process group; PROTOCOL.md, "Preemption"), and refuses new jobs. Each job
   * then ends as it would: a recipe that checkpointed exits 75 and its job rejects with a
   * retryable RecipePreemptedError; one that finishes first succeeds; one still running when the
   * worker's grace time is over is cancelled through the job's signal.
   */
  preempt(): void {
    if (this.preempting) return;
    this.preempting = true;
    const ask = () => {
      for (const pgid of this.running) signalGroup(pgid, 'SIGUSR1');
    };
    ask();
    // Again every second: a recipe ignores the signal until it is ready to act on it (a train
    // recipe from the start of its run), and one asked earlier must not miss the request.
    setInterval(ask, 1_000).unref();
  }

  /** Starts the recipe and follows it to the end: events, logs, abort, cleanup, outcome. */
  private async supervise(job: JobSpec, script: string, specFile: string, workDir: string): Promise<Record<string, unknown>> {
    const { recipe, signal } = job;
    const child: ChildProcess = spawn(this.options.python, [script, '--spec', specFile, '--out', job.outDir], {
      cwd: workDir,
      detached: true, // a new session and process group, led by the child: pgid = child.pid
      stdio: ['ignore', 'pipe', 'pipe'],
      env: recipeEnvironment(this.options.env ?? process.env, job.env, job.gpuIndices),
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
      child.once('exit', (code, sig) => resolve({ code, signal: sig }));
      child.once('error', (error) => resolve({ code: null, signal: null, error })); // could not start
    });

    // ---- termination -------------------------------------------------------------------------
    const pgid = child.pid;
    let killTimer: NodeJS.Timeout | undefined;
    /** SIGTERM to the whole group now, SIGKILL after the grace period. Idempotent. */
    const terminate = () => {
      if (pgid === undefined || killTimer) return;
      signalGroup(pgid, 'SIGTERM');
      killTimer = setTimeout(() => signalGroup(pgid, 'SIGKILL'), this.killGraceMs);
    };
    const onAbort = () => terminate();
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) terminate(); // aborted while we were preparing: no event will come
    if (pgid !== undefined) this.running.add(pgid);
    // The job's own "checkpoint and stop" (a preempted stage): SIGUSR1 now and every second, as
    // preempt() does, since a recipe ignores it until it is ready to act on it.
    let askTimer: NodeJS.Timeout | undefined;
    const askToCheckpoint = () => {
      if (pgid === undefined || askTimer) return;
      signalGroup(pgid, 'SIGUSR1');
      askTimer = setInterval(() => signalGroup(pgid, 'SIGUSR1'), 1_000);
    };
    job.checkpointSignal?.addEventListener('abort', askToCheckpoint, { once: true });
    if (job.checkpointSignal?.aborted) askToCheckpoint();

    // ---- hung recipes --------------------------------------------------------------------------
    let hung = false;
    let progressTimer: NodeJS.Timeout | undefined;
    /** (Re)starts the progress clock: called at the start and on every event. */
    const progressed = () => {
      if (!job.progressTimeoutMs) return;
      clearTimeout(progressTimer);
      progressTimer = setTimeout(() => {
        hung = true;
        terminate();
      }, job.progressTimeoutMs);
    };
    progressed();

    // ---- output ------------------------------------------------------------------------------
    const output = new RecipeOutput(job, { progressed, stop: terminate }, this.stderrTailLines);
    const stdoutDone = readLines(child.stdout!, (line) => output.stdout(line));
    const stderrDone = readLines(child.stderr!, (line) => output.stderr(line));

    let exit: Awaited<typeof exited>;
    try {
      exit = await exited;
      clearTimeout(progressTimer);
      if (pgid !== undefined) await this.waitForGroupToEnd(pgid, terminate);
      // With every process gone, the pipes close; a process that escaped the group may still
      // hold them, so wait only briefly before giving up on the rest of its output.
      await Promise.race([Promise.all([stdoutDone, stderrDone]), sleep(2_000)]);
      child.stdout?.destroy();
      child.stderr?.destroy();
      await output.drained();
    } finally {
      signal?.removeEventListener('abort', onAbort);
      job.checkpointSignal?.removeEventListener('abort', askToCheckpoint);
      clearInterval(askTimer);
      clearTimeout(killTimer);
      clearTimeout(progressTimer);
      if (pgid !== undefined) this.running.delete(pgid);
    }

    // ---- outcome -----------------------------------------------------------------------------
    return recipeOutcome({
      recipe,
      output,
      exitCode: exit.code,
      signal: exit.signal,
      aborted: signal,
      hungAfterMs: hung ? job.progressTimeoutMs : undefined,
      startError: exit.error ? { message: `${this.options.python}: ${exit.error.message}`, cause: exit.error } : undefined,
      preempted: exit.code === EXIT_PREEMPTED || ((this.preempting || job.checkpointSignal?.aborted === true) && exit.signal === 'SIGUSR1'),
      preemptedBecause: this.preempting ? 'this worker is shutting down' : 'it was asked to checkpoint and stop',
    });
  }

  /**
   * After the leader exits, ends whatever else is left in its group (SIGTERM, then SIGKILL after
   * the grace period) and waits until nothing is. Gives up, loudly, only if processes survive
   * SIGKILL for seconds (uninterruptible I/O).
   */
  private async waitForGroupToEnd(pgid: number, terminate: () => void): Promise<void> {
    const giveUpAt = Date.now() + this.killGraceMs + 5_000;
    while (processGroupAlive(pgid)) {
      terminate();
      if (Date.now() > giveUpAt) {
        signalGroup(pgid, 'SIGKILL');
        process.emitWarning(`forgeline: processes of recipe group ${pgid} survived SIGKILL; giving up waiting for them`);
        return;
      }
      await sleep(25);
    }
  }
}
