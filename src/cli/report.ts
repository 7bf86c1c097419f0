import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import { localRunPath } from '../adapters/local-tracker';
import type { ForgelineConfig } from '../config/schema';
import { trackerRunId } from '../contracts/release-lifecycle';
import { DEFAULT_RETRY_POLICY, WandbApi, withRetry } from '../adapters/wandb-api';
import { collectReleaseReport, ReportInputError, wandbLossHistory, type CollectOptions } from '../report/collect';
import { renderReleaseReport } from '../report/render';
import { CliError, ExitCode, UsageError } from './errors';
import type { Output } from './output';

type Run = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;
type WithClient = <T>(cfg: ForgelineConfig, fn: (client: Client) => Promise<T>) => Promise<T>;

/** The default file name for a release's report: `release-demo-abc1234.html`. */
export function defaultReportFile(releaseId: string): string {
  return `${releaseId.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '')}.html`;
}

/** Where the loss curve comes from: the local tracker's run file, or W&B's API with our key. */
function trackerSource(cfg: ForgelineConfig, releaseId: string): CollectOptions {
  const t = cfg.tracker;
  if (t.kind === 'local') return { trackerRunFile: localRunPath(cfg.home, t.wandb.project, trackerRunId(releaseId)) };
  if (!t.wandb.apiKey) return {};
  const api = new WandbApi({ baseUrl: t.wandb.baseUrl, apiKey: t.wandb.apiKey, requestTimeoutMs: 30_000 });
  const history = wandbLossHistory(api);
  return { wandbHistory: (run) => withRetry(() => history(run), DEFAULT_RETRY_POLICY) };
}

/** `forgeline report <id>`: collect from the history (and the local tracker run), render, write one HTML file. */
export async function writeReleaseReport(client: Client, cfg: ForgelineConfig, releaseId: string, opts: { out?: string; json?: boolean }, out: Output): Promise<number> {
  const file = path.resolve(opts.out ?? defaultReportFile(releaseId));
  let data;
  try {
    data = await collectReleaseReport(client, releaseId, trackerSource(cfg, releaseId));
  } catch (err) {
    if (err instanceof ReportInputError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
  try {
    await writeFile(file, renderReleaseReport(data));
  } catch (err) {
    throw new CliError(`cannot write the report to ${file}: ${(err as Error).message}; pick another --out`, ExitCode.Failure, { cause: err });
  }
  if (opts.json) out.json({ releaseId, file, outcome: data.outcome ?? data.executionStatus, decisions: data.trail.filter((t) => t.decisive).length });
  else out.log(`wrote ${file} (${data.model}, ${data.outcome ?? data.executionStatus}; ${data.trail.length} entries in the decision trail)`);
  return ExitCode.Ok;
}

/** Adds `forgeline report <releaseId> [--out file.html]`. */
export function addReportCommand(program: Command, out: Output, run: Run, cfg: () => ForgelineConfig, withClient: WithClient): void {
  program
    .command('report')
    .description('write a self-contained HTML report of a release: training loss, eval vs comparator with CIs, quantization size, canary steps and verdicts, drift, and the decision trail from its workflow history')
    .argument('<releaseId>', 'release workflow ID, e.g. release/support-bot/3f2a1c9')
    .option('--out <file>', 'where to write the HTML (default: the release ID as a file name in the current directory)')
    .option('--json', 'print machine-readable JSON only: {releaseId, file, outcome, decisions}')
    .action(
      run(async (id: string, opts: { out?: string; json?: boolean }) => {
        const c = cfg();
        return withClient(c, (client) => writeReleaseReport(client, c, id, opts, out));
      }),
    );
}
