import { Format, MultiBar, type Options, type Params, type SingleBar } from 'cli-progress';
import type { StageHeartbeat } from '../contracts/release-lifecycle';
import type { Log } from './stack';

/** Where the CLI writes: process.stdout, or a fake in tests. */
export interface Stream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

/** What `release watch` shows of a running release at one moment. */
export interface ReleaseView {
  workflowId: string;
  stage: string;
  awaitingApproval?: boolean;
  approvalDeadline?: string;
  /** The running activity's attempt; > 1 after a retry. */
  attempt?: number;
  beat?: StageHeartbeat;
}

function hasSteps(beat?: StageHeartbeat): beat is StageHeartbeat & { step: number; totalSteps: number } {
  return beat?.step !== undefined && beat.totalSteps !== undefined && beat.totalSteps > 0;
}

/** The parts of a view after its stage: step, loss, newest checkpoint, retries, what it waits for. */
function viewDetails(v: ReleaseView): string[] {
  const b = v.beat;
  const parts: string[] = [];
  if (hasSteps(b)) parts.push(`step ${b.step}/${b.totalSteps}`);
  if (b?.loss !== undefined) parts.push(`loss ${b.loss.toFixed(4)}`);
  if (b?.checkpoint) parts.push(`checkpoint @${b.checkpoint.step}`);
  if (b?.message && !hasSteps(b)) parts.push(b.message);
  if (v.attempt !== undefined && v.attempt > 1) parts.push(`[attempt ${v.attempt}]`);
  if (v.awaitingApproval) {
    const until = v.approvalDeadline ? ` until ${v.approvalDeadline}` : '';
    parts.push(`awaiting approval${until}: forgeline release approve ${v.workflowId} --by WHO --reason WHY`);
  }
  return parts;
}

/** One plain line for a view: `[train] step 120/200 loss 1.2345 checkpoint @100 [attempt 2]`. */
export function describeView(v: ReleaseView): string {
  return [`[${v.stage}]`, ...viewDetails(v)].join(' ');
}

/** Live progress of one release: drawn in place on a terminal, as plain lines elsewhere. */
export interface Progress {
  update(view: ReleaseView): void;
  /** A line of other output while progress is shown (above the bar on a terminal). */
  log(line: string): void;
  stop(): void;
}

/** Not a terminal (a pipe, a CI log): a line whenever what it shows changes. */
export class PlainProgress implements Progress {
  private last = '';
  constructor(private readonly stream: Stream) {}
  update(view: ReleaseView): void {
    const line = describeView(view);
    if (line !== this.last) this.stream.write(`  ${line}\n`);
    this.last = line;
  }
  log(line: string): void {
    this.stream.write(`${line}\n`);
  }
  stop(): void {}
}

/**
 * `--json`: one JSON object per line (NDJSON) on stdout whenever what it shows changes,
 * `{"event":"progress", ...view}`; other lines go to stderr, so stdout stays parseable.
 */
export class JsonProgress implements Progress {
  private last = '';
  constructor(
    private readonly stream: Stream,
    private readonly errors: Stream,
  ) {}
  update(view: ReleaseView): void {
    const line = JSON.stringify({ event: 'progress', ...view });
    if (line !== this.last) this.stream.write(`${line}\n`);
    this.last = line;
  }
  log(line: string): void {
    this.errors.write(`${line}\n`);
  }
  stop(): void {}
}

/** A terminal: one line redrawn in place, with a bar for training steps (cli-progress). */
export class TtyProgress implements Progress {
  private readonly bars: MultiBar;
  private bar?: SingleBar;
  /** Whoever ends the process (Ctrl-C, the demo's own shutdown) gets the cursor and line wrapping back. */
  private readonly restoreTerminal = () => void this.stream.write('\x1b[?25h\x1b[?7h\n');
  constructor(private readonly stream: Stream, options: Partial<Options> = {}) {
    const format = (opts: Options, params: Params, payload: { view?: ReleaseView }): string => {
      const v = payload.view;
      if (!v) return '';
      const bar = hasSteps(v.beat) ? [Format.BarFormat(params.progress, opts)] : [];
      return [`[${v.stage}]`, ...bar, ...viewDetails(v)].join(' ');
    };
    this.bars = new MultiBar({
      stream: stream as NodeJS.WritableStream,
      format,
      barsize: 24,
      barCompleteChar: '█',
      barIncompleteChar: '░',
      hideCursor: true,
      // cli-progress's own SIGINT handler would keep Ctrl-C from ending the process; see restoreTerminal.
      gracefulExit: false,
      ...options,
    });
  }
  update(view: ReleaseView): void {
    const total = hasSteps(view.beat) ? view.beat.totalSteps : 1;
    const value = hasSteps(view.beat) ? view.beat.step : 0;
    if (!this.bar) {
      this.bar = this.bars.create(total, value, { view });
      process.once('exit', this.restoreTerminal);
    }
    this.bar.setTotal(total);
    this.bar.update(value, { view });
  }
  log(line: string): void {
    if (this.bar) this.bars.log(`${line}\n`);
    else this.stream.write(`${line}\n`);
  }
  stop(): void {
    if (!this.bar) return;
    this.bars.update(); // flush lines logged since the last redraw
    this.bars.stop();
    this.bar = undefined;
    process.off('exit', this.restoreTerminal);
  }
}

/**
 * The CLI's output: lines and JSON on stdout, errors on stderr. While a release's progress is
 * shown, lines go through it, so they print above an in-place bar instead of through it.
 */
export class Output {
  private active?: Progress;
  constructor(readonly stdout: Stream, readonly stderr: Stream) {}

  readonly log: Log = (line) => {
    if (this.active) this.active.log(line);
    else this.stdout.write(`${line}\n`);
  };

  json(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** One NDJSON event line on stdout (`--json` on commands that follow something over time). */
  event(event: string, value: Record<string, unknown>): void {
    this.stdout.write(`${JSON.stringify({ event, ...value })}\n`);
  }

  /** The same Output with its lines on stderr: for `--json`, where stdout carries JSON only. */
  toStderr(): Output {
    return new Output(this.stderr, this.stderr);
  }

  error(line: string): void {
    this.stderr.write(`${line}\n`);
  }

  /** Start showing progress; `stop()` on the result ends it. */
  progress(json = false): Progress {
    const p = json ? new JsonProgress(this.stdout, this.stderr) : this.stdout.isTTY ? new TtyProgress(this.stdout) : new PlainProgress(this.stdout);
    this.active = p;
    return {
      update: (v) => p.update(v),
      log: (l) => p.log(l),
      stop: () => {
        p.stop();
        if (this.active === p) this.active = undefined;
      },
    };
  }
}
