import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorType } from '../contracts/errors';
import type { JobRunner, JobSpec, RecipeEvent } from '../ports/job-runner';
import { ForgelineError } from '../ports/errors';

const STDERR_TAIL_LINES = 40;

/** A recipe failed in a way a retry may fix (crash, OOM, killed); the message carries its stderr tail. */
export class RecipeCrashedError extends Error {
  constructor(message: string, readonly exitCode: number | null, readonly signal: NodeJS.Signals | null) {
    super(message);
    this.name = 'RecipeCrashedError';
  }
}

export interface SubprocessJobRunnerOptions {
  /** Python interpreter of the venv. */
  python: string;
  /** Directory holding `<recipe>.py`. */
  recipesDir: string;
  /** After SIGTERM on abort, SIGKILL the group after this long. */
  killGraceMs?: number;
  /** Extra environment for every recipe. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs a recipe as `python <recipesDir>/<recipe>.py --spec <file> --out <dir>` in its own process
 * group, parses its JSON-lines events, and maps its exit to the protocol's outcomes: 0 → result,
 * 2 → terminal ForgelineError, anything else → RecipeCrashedError (retryable).
 */
export class SubprocessJobRunner implements JobRunner {
  constructor(private readonly opts: SubprocessJobRunnerOptions) {}

  run(job: JobSpec): Promise<Record<string, unknown>> {
    mkdirSync(job.outDir, { recursive: true });
    const specFile = path.join(job.outDir, `.${job.recipe}.spec.json`);
    writeFileSync(specFile, JSON.stringify(job.input, null, 2));
    const script = path.join(this.opts.recipesDir, `${job.recipe}.py`);
    const child = spawn(this.opts.python, [script, '--spec', specFile, '--out', job.outDir], {
      cwd: this.opts.recipesDir,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        ...this.opts.env,
        PYTHONUNBUFFERED: '1',
        HF_HUB_OFFLINE: '1',
        TRANSFORMERS_OFFLINE: '1',
        HF_DATASETS_OFFLINE: '1',
        CUDA_VISIBLE_DEVICES: job.gpuIndices.join(','),
        FORGELINE_PARENT_PID: String(process.pid),
      },
    });

    const stderrTail: string[] = [];
    let result: Record<string, unknown> | undefined;
    let recipeError: Extract<RecipeEvent, { event: 'error' }> | undefined;
    // Events are handled strictly in order, even when a handler is async (e.g. publishing a checkpoint).
    let chain: Promise<void> = Promise.resolve();
    let handlerError: unknown;

    const onStdoutLine = (line: string) => {
      const trimmed = line.trim();
      let ev: RecipeEvent | undefined;
      if (trimmed.startsWith('{')) {
        try {
          const parsed = JSON.parse(trimmed) as { event?: unknown };
          if (typeof parsed.event === 'string') ev = parsed as RecipeEvent;
        } catch {
          /* not an event: a log line that happens to start with '{' */
        }
      }
      if (!ev) return job.onLog?.(line, 'stdout');
      if (ev.event === 'result') result = ev.result;
      if (ev.event === 'error') recipeError = ev;
      const e = ev;
      chain = chain.then(async () => {
        if (handlerError === undefined) await job.onEvent?.(e);
      }).catch((err: unknown) => {
        handlerError ??= err;
        kill('SIGTERM');
      });
    };
    const onStderrLine = (line: string) => {
      stderrTail.push(line);
      if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
      job.onLog?.(line, 'stderr');
    };
    splitLines(child.stdout!, onStdoutLine);
    splitLines(child.stderr!, onStderrLine);

    const kill = (sig: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      kill('SIGTERM');
      killTimer = setTimeout(() => kill('SIGKILL'), this.opts.killGraceMs ?? 10_000);
    };
    if (job.signal?.aborted) onAbort();
    job.signal?.addEventListener('abort', onAbort, { once: true });

    return new Promise((resolve, reject) => {
      child.once('error', (err) => reject(new RecipeCrashedError(`could not start recipe ${job.recipe}: ${err.message}`, null, null)));
      child.once('close', (code, sig) => {
        job.signal?.removeEventListener('abort', onAbort);
        if (killTimer) clearTimeout(killTimer);
        kill('SIGKILL'); // anything the recipe left behind in its group
        void chain.then(() => {
          const tail = stderrTail.slice(-15).join('\n');
          if (job.signal?.aborted) return reject(job.signal.reason instanceof Error ? job.signal.reason : new Error(`recipe ${job.recipe} cancelled`));
          if (handlerError !== undefined) return reject(handlerError);
          if (code === 0 && result) return resolve(result);
          if (code === 2) {
            const type = (recipeError?.type as ErrorType | undefined) ?? ErrorType.RecipeFailed;
            return reject(new ForgelineError(Object.values(ErrorType).includes(type) ? type : ErrorType.RecipeFailed, `recipe ${job.recipe}: ${recipeError?.message ?? tail}`, true));
          }
          const why = code === 0 ? 'exited 0 without a result event' : sig ? `was killed by ${sig}` : `exited with code ${code}`;
          reject(new RecipeCrashedError(`recipe ${job.recipe} ${why}${recipeError ? `: ${recipeError.message}` : ''}\n${tail}`, code, sig));
        });
      });
    });
  }
}

function splitLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => {
    if (buf) onLine(buf);
  });
}
