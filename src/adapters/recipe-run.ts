/**
 * The recipe protocol (workers/recipes/PROTOCOL.md) as every JobRunner applies it, whatever runs
 * the recipe (a local process group, a Kubernetes Job): reading its output lines into ordered
 * events and logs (`RecipeOutput`), and mapping how it ended to a result or an error
 * (`recipeOutcome`):
 *
 * - exit 0 with a `result` event resolves with its payload; exit 0 without one is a protocol
 *   violation, terminal;
 * - exit 2 rejects with a terminal RecipeFailedError carrying the type and message of the
 *   recipe's `error` event;
 * - exit 75, or a recipe stopped because its worker or node is going away, rejects with a
 *   retryable RecipePreemptedError (its retry resumes from the last checkpoint);
 * - any other exit, a signal, an OOM kill, a recipe that never started, rejects with a retryable
 *   RecipeCrashedError that includes the stderr tail;
 * - a malformed event or a checkpoint path leading out of the output directory rejects with a
 *   terminal RecipeFailedError of type RecipeContract; a recipe silent past its progress timeout
 *   with a retryable RecipeCrashedError; an abort with the signal's reason.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { ErrorType } from '../contracts/errors';
import { checkRecipeEvent } from '../contracts/recipes';
import type { Validated } from '../contracts/validate';
import { ForgelineError } from '../ports/errors';
import type { JobSpec, RecipeEvent } from '../ports/job-runner';

export const DEFAULT_STDERR_TAIL_LINES = 50;
/** A stdout/stderr "line" longer than this is cut and passed on as a log line. */
const MAX_LINE_CHARS = 16 * 1024 * 1024;
/** Exit code of a recipe that saved a checkpoint and stopped because its worker asked it to (PROTOCOL.md). */
export const EXIT_PREEMPTED = 75;
/** Recipe names map to file names: no separators, no dots, nothing hidden. */
export const RECIPE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

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

/**
 * The recipe stopped because its worker is shutting down (SIGTERM: spot notice, rolling deploy),
 * after saving a checkpoint where it could: a retry on another worker resumes from it.
 */
export class RecipePreemptedError extends ForgelineError {
  readonly details: RecipeRunDetails;
  constructor(message: string, details: RecipeRunDetails) {
    super(ErrorType.RecipeFailed, message, false);
    this.name = 'RecipePreemptedError';
    this.details = details;
  }
}

/**
 * Why `reported` (a path a recipe named, relative to its output directory) is not a path inside
 * `outDir`, or undefined when it is. Symbolic links are followed where the path exists.
 */
export function pathOutside(outDir: string, reported: string): string | undefined {
  const inside = (root: string, p: string) => {
    const rel = path.relative(root, p);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
  };
  if (path.isAbsolute(reported) || !inside(outDir, path.resolve(outDir, reported))) {
    return `path ${JSON.stringify(reported)} is not inside the output directory`;
  }
  let real: string;
  try {
    real = realpathSync(path.resolve(outDir, reported));
  } catch {
    return undefined; // not there (yet): nothing to follow; publishing it will say it is missing
  }
  if (!inside(realpathSync(outDir), real)) return `path ${JSON.stringify(reported)} leads out of the output directory (to ${real})`;
  return undefined;
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
// Lines
// ---------------------------------------------------------------------------------------------

/** Calls `onLine` for every line of `stream` (a last unterminated line included); resolves at its end. */
export function readLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): Promise<void> {
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
// Output and outcome (shared by every JobRunner: the Kubernetes one feeds it the pod's log)
// ---------------------------------------------------------------------------------------------

type ErrorEvent = Extract<RecipeEvent, { event: 'error' }>;

/**
 * Where a runner sends a recipe's output lines: stdout lines that are protocol events go to the
 * job's `onEvent`, strictly in order (each handler awaited before the next), other lines to
 * `onLog`; the last stderr lines are kept for error messages. A malformed event, a `checkpoint`
 * leading out of `outDir` or a throwing `onEvent` stops the recipe (`stop`); every event restarts
 * the progress clock (`progressed`).
 */
export class RecipeOutput {
  result: Record<string, unknown> | undefined;
  recipeError: ErrorEvent | undefined;
  /** Why the recipe broke the protocol (a malformed event, a checkpoint outside outDir). */
  protocolError: string | undefined;
  /** The job's onEvent threw (e.g. it could not publish a checkpoint): the job rejects with it. */
  handlerError: { error: unknown } | undefined;
  readonly stderrTail: string[] = [];
  private handlers: Promise<void> = Promise.resolve();

  constructor(
    private readonly job: Pick<JobSpec, 'outDir' | 'onEvent' | 'onLog'>,
    private readonly hooks: { progressed(): void; stop(): void },
    private readonly stderrTailLines = DEFAULT_STDERR_TAIL_LINES,
  ) {}

  stdout(line: string): void {
    const parsed = parseEventLine(line);
    if (!parsed) return this.log(line, 'stdout');
    if (!parsed.ok) {
      // A malformed event is a bug on one side of the contract: stop the recipe, fail terminally.
      this.protocolError ??= parsed.problems.join('; ');
      return this.hooks.stop();
    }
    if (this.protocolError) return;
    const event = parsed.value;
    this.hooks.progressed();
    if (event.event === 'checkpoint') {
      const outside = pathOutside(this.job.outDir, event.path);
      if (outside) {
        this.protocolError ??= `checkpoint event: ${outside}`;
        return this.hooks.stop();
      }
    }
    if (event.event === 'result') this.result = event.result;
    if (event.event === 'error') this.recipeError = event;
    const { onEvent } = this.job;
    this.handlers = this.handlers.then(async () => {
      if (this.handlerError || !onEvent) return;
      try {
        await onEvent(event);
      } catch (error) {
        this.handlerError = { error };
        this.hooks.stop();
      }
    });
  }

  stderr(line: string): void {
    this.stderrTail.push(line);
    if (this.stderrTail.length > this.stderrTailLines) this.stderrTail.shift();
    this.log(line, 'stderr');
  }

  /** Resolves once the handlers of every event seen so far have run. */
  drained(): Promise<void> {
    return this.handlers;
  }

  private log(line: string, stream: 'stdout' | 'stderr'): void {
    try {
      this.job.onLog?.(line, stream);
    } catch {
      /* a logging callback must not break the job */
    }
  }
}

/** How a recipe's run ended, as its runner saw it. */
export interface RecipeEnding {
  recipe: string;
  output: RecipeOutput;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The job's signal: when aborted, the job rejects with its reason. */
  aborted?: AbortSignal;
  /** Set when the runner stopped the recipe for printing no event for this long. */
  hungAfterMs?: number;
  /** The recipe never ran (no interpreter, an image that cannot be pulled). */
  startError?: { message: string; cause?: unknown };
  /** It stopped because its worker asked it to (exit 75), or was stopped for the same reason. */
  preempted: boolean;
  /** Why, for the message: "this worker is shutting down", "the node was drained". */
  preemptedBecause?: string;
  /** Says how it was killed instead of "was killed by SIGKILL (out of memory?)" (e.g. OOMKilled). */
  killedHow?: string;
}

/**
 * The outcome of a run (PROTOCOL.md, "Exit codes"): the result event's payload, or the error the
 * job rejects with. Every runner maps exits through this one function.
 */
export function recipeOutcome(end: RecipeEnding): Record<string, unknown> {
  const { recipe, output } = end;
  const { stderrTail, recipeError, result } = output;
  const details: RecipeRunDetails = { recipe, exitCode: end.exitCode, signal: end.signal, stderrTail: [...stderrTail] };
  if (end.aborted?.aborted) throw abortReason(end.aborted);
  if (output.handlerError) throw output.handlerError.error;
  if (end.hungAfterMs !== undefined) {
    throw new RecipeCrashedError(`recipe ${recipe} printed no progress for ${end.hungAfterMs / 1000} s (its progress timeout) and was stopped as hung${tailText(stderrTail)}`, details);
  }
  if (output.protocolError) {
    throw new RecipeFailedError(ErrorType.RecipeContract, `recipe ${recipe} broke the protocol (workers/recipes/PROTOCOL.md): ${output.protocolError}${tailText(stderrTail)}`, details);
  }
  if (end.startError) {
    throw new RecipeCrashedError(`recipe ${recipe} could not start: ${end.startError.message}`, details, { cause: end.startError.cause });
  }
  if (end.preempted) {
    throw new RecipePreemptedError(`recipe ${recipe} stopped because ${end.preemptedBecause ?? 'its worker is shutting down'}; a retry resumes from its last checkpoint`, details);
  }
  if (end.exitCode === 0) {
    if (result) return result;
    throw new RecipeFailedError(
      ErrorType.RecipeFailed,
      `recipe ${recipe} exited 0 without a result event (protocol violation: see workers/recipes/PROTOCOL.md)${tailText(stderrTail)}`,
      details,
    );
  }
  if (end.exitCode === 2) {
    const type = recipeErrorType(recipeError?.type);
    const said = recipeError?.message ?? `no error event was printed${tailText(stderrTail)}`;
    const named = recipeError?.type !== undefined && recipeError.type !== type ? ` [${recipeError.type}]` : '';
    throw new RecipeFailedError(type, `recipe ${recipe} failed${named}: ${said}`, details);
  }
  const how =
    end.killedHow ??
    (end.signal ? `was killed by ${end.signal}${end.signal === 'SIGKILL' ? ' (out of memory?)' : ''}` : `exited with code ${end.exitCode}`);
  throw new RecipeCrashedError(`recipe ${recipe} ${how}${recipeError ? `: ${recipeError.message}` : ''}${tailText(stderrTail)}`, details);
}

/** The ErrorType a recipe named in its error event, or RecipeFailed for a name Forgeline does not know. */
export function recipeErrorType(name: string | undefined): ErrorType {
  return name !== undefined && (Object.values(ErrorType) as string[]).includes(name) ? (name as ErrorType) : ErrorType.RecipeFailed;
}

/** The error a job rejects with when its signal aborted it: the signal's reason. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const error = new Error(`job aborted${reason === undefined ? '' : `: ${String(reason)}`}`);
  error.name = 'AbortError';
  return error;
}

/** The stderr tail as the end of an error message. */
export function tailText(lines: string[]): string {
  return lines.length ? `\n--- last ${lines.length} line(s) of stderr ---\n${lines.join('\n')}` : '';
}
