/**
 * `forgeline release list`: releases from Temporal's visibility store, filtered on Forgeline's
 * search attributes (the same query works in the Temporal UI's search box).
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import type { Command } from 'commander';
import type { ForgelineConfig } from '../config/schema';
import { ForgelineAwaitingApproval, ForgelineDecidedBy, ForgelineGitSha, ForgelineLifecycle, ForgelineModel, ForgelineOutcome, ForgelineStage, Lifecycle } from '../contracts/search-attributes';
import { ReleaseOutcome } from '../contracts/release-lifecycle';
import { ExitCode, UsageError } from './errors';
import type { Output } from './output';

type Run = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;
type WithClient = <T>(cfg: ForgelineConfig, fn: (client: Client) => Promise<T>) => Promise<T>;

export interface ReleaseListFilter {
  model?: string;
  outcome?: ReleaseOutcome;
  awaitingApproval?: boolean;
}

export interface ReleaseListRow {
  releaseId: string;
  model: string | null;
  outcome: string | null;
  stage: string | null;
  awaitingApproval: boolean;
  decidedBy: string | null;
  gitSha: string | null;
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, TERMINATED, ... */
  execution: string;
  startTime: string;
  closeTime: string | null;
}

const OUTCOMES = Object.values(ReleaseOutcome) as string[];
const MODEL = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** `--outcome` / `--model` / `--limit` checked before any connection, each error naming the option and the fix. */
export function parseReleaseListOptions(opts: { model?: string; outcome?: string; awaitingApproval?: boolean; limit?: string }): { filter: ReleaseListFilter; limit: number } {
  const filter: ReleaseListFilter = {};
  if (opts.model !== undefined) {
    if (!MODEL.test(opts.model)) throw new UsageError(`--model ${JSON.stringify(opts.model)}: expected a model alias like support-bot (lowercase letters, digits, dashes)`);
    filter.model = opts.model;
  }
  if (opts.outcome !== undefined) {
    const match = OUTCOMES.find((o) => o.toLowerCase() === opts.outcome!.toLowerCase());
    if (!match) throw new UsageError(`--outcome ${JSON.stringify(opts.outcome)}: expected one of ${OUTCOMES.join(', ')}`);
    filter.outcome = match as ReleaseOutcome;
  }
  if (opts.awaitingApproval) filter.awaitingApproval = true;
  const limit = opts.limit === undefined ? 20 : Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit ${opts.limit}: expected a whole number from 1 to 1000`);
  return { filter, limit };
}

/**
 * The visibility query: releases only (not stack checks, re-embeds, rollbacks). No ORDER BY: the
 * SQL visibility stores refuse it; every store's own order is running first, then newest closed.
 */
export function releaseListQuery(filter: ReleaseListFilter): string {
  const terms = [`${ForgelineLifecycle.name} = "${Lifecycle.Release}"`];
  // Values were checked against closed patterns above, so quoting them needs no escaping.
  if (filter.model) terms.push(`${ForgelineModel.name} = "${filter.model}"`);
  if (filter.outcome) terms.push(`${ForgelineOutcome.name} = "${filter.outcome}"`);
  if (filter.awaitingApproval) terms.push(`${ForgelineAwaitingApproval.name} = true`);
  return terms.join(' AND ');
}

function rowOf(info: WorkflowExecutionInfo): ReleaseListRow {
  const sa = info.typedSearchAttributes;
  return {
    releaseId: info.workflowId,
    model: sa.get(ForgelineModel) ?? null,
    outcome: sa.get(ForgelineOutcome) ?? null,
    stage: sa.get(ForgelineStage) ?? null,
    awaitingApproval: sa.get(ForgelineAwaitingApproval) ?? false,
    decidedBy: sa.get(ForgelineDecidedBy) ?? null,
    gitSha: sa.get(ForgelineGitSha) ?? null,
    execution: info.status.name,
    startTime: info.startTime.toISOString(),
    closeTime: info.closeTime?.toISOString() ?? null,
  };
}

export async function listReleases(client: Client, filter: ReleaseListFilter, limit: number): Promise<ReleaseListRow[]> {
  const rows: ReleaseListRow[] = [];
  for await (const info of client.workflow.list({ query: releaseListQuery(filter), pageSize: Math.min(limit, 100) })) {
    rows.push(rowOf(info));
    if (rows.length >= limit) break;
  }
  return rows;
}

/** A fixed-width table, one release a line. */
export function formatReleaseTable(rows: readonly ReleaseListRow[]): string[] {
  if (rows.length === 0) return ['no releases match'];
  const cells = rows.map((r) => [r.releaseId, r.model ?? '-', r.outcome ?? '-', r.awaitingApproval ? `${r.stage ?? '-'} (awaiting approval)` : (r.stage ?? '-'), r.startTime.replace(/\.\d+Z$/, 'Z'), r.decidedBy ?? '']);
  const header = ['RELEASE', 'MODEL', 'OUTCOME', 'STAGE', 'STARTED', 'DECIDED BY'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [header, ...cells].map((c) => c.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd());
}

/** Adds `forgeline release list` to the `release` command. */
export function addReleaseListCommand(release: Command, out: Output, run: Run, cfg: () => ForgelineConfig, withClient: WithClient): void {
  release
    .command('list')
    .description('list releases (running first, then newest closed) from Temporal visibility (search attributes ForgelineLifecycle, ForgelineModel, ForgelineOutcome, ForgelineAwaitingApproval)')
    .option('--model <alias>', 'only this model')
    .option('--outcome <outcome>', `only this outcome: ${OUTCOMES.join(', ')}`)
    .option('--awaiting-approval', 'only releases waiting for approve/reject')
    .option('--limit <n>', 'at most this many (1..1000)', '20')
    .option('--json', 'print machine-readable JSON only: an array of {releaseId, model, outcome, stage, awaitingApproval, decidedBy, gitSha, execution, startTime, closeTime}')
    .action(
      run(async (opts: { model?: string; outcome?: string; awaitingApproval?: boolean; limit?: string; json?: boolean }) => {
        const { filter, limit } = parseReleaseListOptions(opts);
        const rows = await withClient(cfg(), (client) => listReleases(client, filter, limit));
        if (opts.json) out.json(rows);
        else for (const line of formatReleaseTable(rows)) out.log(line);
        return ExitCode.Ok;
      }),
    );
}
