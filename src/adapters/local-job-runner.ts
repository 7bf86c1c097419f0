/**
 * JobRunner on the worker's own machine: each job is a Python subprocess speaking the recipe
 * protocol (workers/recipes/PROTOCOL.md):
 *
 *   <python> <recipesDir>/<recipe>.py --spec <workDir>/spec.json --out <outDir>
 *
 * - The recipe runs in a process group of its own (`detached`), so that cancelling a job can kill
 *   everything it started (tokenizer pools, dataloader workers, compilers), not just the leader.
 * - Its environment is the worker's plus HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1,
 *   HF_DATASETS_OFFLINE=1, PYTHONUNBUFFERED=1, FORGELINE_EXIT_WITH_PARENT=1 (the recipe ends its
 *   group if this worker dies, so no orphan keeps a GPU) and CUDA_VISIBLE_DEVICES set to the
 *   job's GPUs ('' on cpu, which hides every GPU).
 * - spec.json is written to a private temporary directory that is also the working directory, so
 *   nothing but the recipe's own output lands in `outDir` (which gets published afterwards); it
 *   is removed when the job ends.
 * - stdout lines that are protocol events go to `onEvent`, in order (async handlers are awaited
 *   one after the other); every other line (plain text, malformed JSON, JSON that is not an
 *   event) and all of stderr go to `onLog`. The last stderr lines are kept for error messages.
 *   An event of a known kind whose fields break its schema (src/contracts/recipes/events.ts)
 *   stops the recipe: a terminal RecipeFailedError of type RecipeContract naming the field.
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
import { checkRecipeEvent } from '../contracts/recipes';
import type { Validated } from '../contracts/validate';
import { ForgelineError } from '../ports/errors';
import type { JobRunner, JobSpec, RecipeEvent } from '../ports/job-runner';

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
export const DEFAULT_STDERR_TAIL_LINES = 50;
/** A stdout/stderr "line" longer than this is cut and passed on as a log line. */
const MAX_LINE_CHARS = 16 * 1024 * 1024;
/** Recipe names map to file names: no separators, no dots, nothing hidden. */
const RECIPE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export interface RecipeRunDetails {
  recipe: string;
  /** Exit code, or null when the process was ended by a signal (or never started). */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The last stderr lines, oldest first. */
  stderrTail: string[];
}

/** Retrying cannot help: exit 2 (bad spec, bad data), or a recipe that broke the protocol. */
export class RecipeFailedError extends ForgelineError {
  readonly details: RecipeRunDetails;
  constructor(type: ErrorType, message: string, details: RecipeRunDetails) {
    super(type, message, true);
    this.details = details;
  }
}

/**
 * The recipe crashed, ran out of memory, was killed, or could not start: a retry may succeed
 * (and resumes from the last checkpoint). Its name is deliberately not an ErrorType, so that a
 * workflow's `nonRetryableErrorTypes: ['RecipeFailed']` never stops the retry.
 */
export class RecipeCrashedError extends ForgelineError {
  readonly details: RecipeRunDetails;
  constructor(message: string, details: RecipeRunDetails, options?: { cause?: unknown }) {
    super(ErrorType.RecipeFailed, message, false, options);
    this.name = 'RecipeCrashedError';
    this.details = details;
  }
}

// ---------------------------------------------------------------------------------------------
// Event parsing
// ---------------------------------------------------------------------------------------------

/**
 * The event a stdout line carries (checked against src/contracts/recipes/events.ts), problems
 * naming its bad fields, or undefined for a log line (plain text, bad JSON, JSON that is not an
 * event: no `event` kind the protocol knows).
 */
export function parseEventLine(line: string): Validated<RecipeEvent> | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{')) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(trimmed);
  } catch {
    return undefined;
  }
  return checkRecipeEvent(json);
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
// Lines
// ---------------------------------------------------------------------------------------------

/** Calls `onLine` for every line of `stream` (a last unterminated line included); resolves at its end. */
function readLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve) => {
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, newline).replace(/\r$/, ''));
        pending = pending.slice(newline + 1);
      }
      if (pending.length > MAX_LINE_CHARS) {
        onLine(pending);
        pending = '';
      }
    });
    const finish = () => {
      if (pending) onLine(pending.replace(/\r$/, ''));
      pending = '';
      resolve();
    };
    stream.once('end', finish);
    stream.once('close', finish);
    stream.once('error', finish);
  });
}

// ---------------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------------

export class LocalJobRunner implements JobRunner {
  private readonly killGraceMs: number;
  private readonly stderrTailLines: number;

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

  /** Starts the recipe and follows it to the end: events, logs, abort, cleanup, outcome. */
  private async supervise(job: JobSpec, script: string, specFile: string, workDir: string): Promise<Record<string, unknown>> {
    const { recipe, signal } = job;
    const child: ChildProcess = spawn(this.options.python, [script, '--spec', specFile, '--out', job.outDir], {
      cwd: workDir,
      detached: true, // a new session and process group, led by the child: pgid = child.pid
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...(this.options.env ?? process.env),
        HF_HUB_OFFLINE: '1',
        TRANSFORMERS_OFFLINE: '1',
        HF_DATASETS_OFFLINE: '1',
        PYTHONUNBUFFERED: '1',
        // Recipes built on forgeline_recipes.protocol end their process group if this worker dies.
        FORGELINE_EXIT_WITH_PARENT: '1',
        CUDA_VISIBLE_DEVICES: job.gpuIndices.join(','),
      },
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

    // ---- output ------------------------------------------------------------------------------
    const stderrTail: string[] = [];
    let result: Record<string, unknown> | undefined;
    let recipeError: Extract<RecipeEvent, { event: 'error' }> | undefined;
    let handlerError: { error: unknown } | undefined;
    let protocolError: string | undefined;
    // Handlers run strictly in event order, each awaited before the next starts.
    let handlers: Promise<void> = Promise.resolve();

    const log = (line: string, stream: 'stdout' | 'stderr') => {
      try {
        job.onLog?.(line, stream);
      } catch {
        /* a logging callback must not break the job */
      }
    };
    const stdoutDone = readLines(child.stdout!, (line) => {
      const parsed = parseEventLine(line);
      if (!parsed) return log(line, 'stdout');
      if (!parsed.ok) {
        // A malformed event is a bug on one side of the contract: stop the recipe, fail terminally.
        protocolError ??= parsed.problems.join('; ');
        return terminate();
      }
      if (protocolError) return;
      const event = parsed.value;
      if (event.event === 'result') result = event.result;
      if (event.event === 'error') recipeError = event;
      handlers = handlers.then(async () => {
        if (handlerError || !job.onEvent) return;
        try {
          await job.onEvent(event);
        } catch (error) {
          // The caller could not take the event (e.g. a checkpoint it failed to publish): stop.
          handlerError = { error };
          terminate();
        }
      });
    });
    const stderrDone = readLines(child.stderr!, (line) => {
      stderrTail.push(line);
      if (stderrTail.length > this.stderrTailLines) stderrTail.shift();
      log(line, 'stderr');
    });

    let exit: Awaited<typeof exited>;
    try {
      exit = await exited;
      if (pgid !== undefined) await this.waitForGroupToEnd(pgid, terminate);
      // With every process gone, the pipes close; a process that escaped the group may still
      // hold them, so wait only briefly before giving up on the rest of its output.
      await Promise.race([Promise.all([stdoutDone, stderrDone]), sleep(2_000)]);
      child.stdout?.destroy();
      child.stderr?.destroy();
      await handlers;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(killTimer);
    }

    // ---- outcome -----------------------------------------------------------------------------
    const details: RecipeRunDetails = { recipe, exitCode: exit.code, signal: exit.signal, stderrTail: [...stderrTail] };
    if (signal?.aborted) throw abortReason(signal);
    if (handlerError) throw handlerError.error;
    if (protocolError) {
      throw new RecipeFailedError(ErrorType.RecipeContract, `recipe ${recipe} broke the protocol (workers/recipes/PROTOCOL.md): ${protocolError}${tailText(stderrTail)}`, details);
    }
    if (exit.error) {
      throw new RecipeCrashedError(`recipe ${recipe} could not start: ${this.options.python}: ${exit.error.message}`, details, { cause: exit.error });
    }
    if (exit.code === 0) {
      if (result) return result;
      throw new RecipeFailedError(
        ErrorType.RecipeFailed,
        `recipe ${recipe} exited 0 without a result event (protocol violation: see workers/recipes/PROTOCOL.md)${tailText(stderrTail)}`,
        details,
      );
    }
    if (exit.code === 2) {
      const type = recipeErrorType(recipeError?.type);
      const said = recipeError?.message ?? `no error event was printed${tailText(stderrTail)}`;
      const named = recipeError?.type !== undefined && recipeError.type !== type ? ` [${recipeError.type}]` : '';
      throw new RecipeFailedError(type, `recipe ${recipe} failed${named}: ${said}`, details);
    }
    const how = exit.signal ? `was killed by ${exit.signal}${exit.signal === 'SIGKILL' ? ' (out of memory?)' : ''}` : `exited with code ${exit.code}`;
    throw new RecipeCrashedError(`recipe ${recipe} ${how}${recipeError ? `: ${recipeError.message}` : ''}${tailText(stderrTail)}`, details);
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

/** The ErrorType a recipe named in its error event, or RecipeFailed for a name Forgeline does not know. */
export function recipeErrorType(name: string | undefined): ErrorType {
  return name !== undefined && (Object.values(ErrorType) as string[]).includes(name) ? (name as ErrorType) : ErrorType.RecipeFailed;
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const error = new Error(`job aborted${reason === undefined ? '' : `: ${String(reason)}`}`);
  error.name = 'AbortError';
  return error;
}

function tailText(lines: string[]): string {
  return lines.length ? `\n--- last ${lines.length} line(s) of stderr ---\n${lines.join('\n')}` : '';
}
