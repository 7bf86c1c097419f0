/**
 * `forgeline quota status|apply|validate`: teams' GPU quotas and what the pools' admission
 * workflows hold (workflows/admission). The same view is the `quotaStatus` query in the UI.
 */
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import type { ForgelineConfig } from '../config/schema';
import { ADMISSION_WORKFLOW_TYPE, type AdmissionStatus } from '../contracts/admission';
import type { QuotaFile } from '../contracts/quota';
import { createAdmissionClient } from '../fleet/admission-client';
import { loadQuotaFile, QuotaFileError } from '../fleet/quota-file';
import type { GpuAdmission } from '../ports/gpu-admission';
import { ExitCode, UsageError } from './errors';
import type { Output } from './output';

type Run = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;
type WithClient = <T>(cfg: ForgelineConfig, fn: (client: Client) => Promise<T>) => Promise<T>;

const limit = (n: number | null) => (n === null ? '-' : String(n));

/** The status table: one row per pool and team. */
export function formatQuotaStatus(pools: readonly AdmissionStatus[]): string[] {
  const header = ['POOL', 'TEAM', 'PRIORITY', 'NOMINAL', 'BORROW LIMIT', 'IN USE', 'BORROWED', 'LENT', 'WAITING', 'YIELDING'];
  const rows = pools.flatMap((p) => [
    ...p.teams.map((t) => [p.pool, t.team, String(t.priority), String(t.nominal), limit(t.borrowingLimit), String(t.inUse), String(t.borrowed), String(t.lent), t.waitingLeases ? `${t.waiting} (${t.waitingLeases})` : '0', String(t.yielding)]),
    [p.pool, '(pool)', '', String(p.gpus), '', String(p.inUse), '', '', String(p.waitingLeases.reduce((s, w) => s + w.gpus, 0)), ''],
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Pools to show: the one asked for, else the quota file's (FORGELINE_QUOTAS), else every running admission workflow's. */
async function poolsToShow(client: Client, cfg: ForgelineConfig, pool: string | undefined): Promise<string[]> {
  if (pool) return [pool];
  if (cfg.fleet.quotas) return Object.keys((await readQuotaFile(cfg.fleet.quotas)).pools);
  const pools: string[] = [];
  for await (const w of client.workflow.list({ query: `WorkflowType = '${ADMISSION_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'` })) {
    pools.push(w.workflowId.replace(/^forgeline-admission-/, ''));
  }
  return pools.sort();
}

async function readQuotaFile(file: string): Promise<QuotaFile> {
  try {
    return await loadQuotaFile(file);
  } catch (err) {
    if (err instanceof QuotaFileError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
}

/** `forgeline quota status`: per pool and team, quota, in use, borrowed, lent, waiting. */
export async function quotaStatus(admission: GpuAdmission, pools: readonly string[], opts: { json?: boolean }, out: Output): Promise<number> {
  const found: AdmissionStatus[] = [];
  const missing: string[] = [];
  for (const p of pools) {
    const s = await admission.status(p);
    if (s) found.push(s);
    else missing.push(p);
  }
  if (opts.json) {
    out.json(found);
    return ExitCode.Ok;
  }
  if (found.length) for (const l of formatQuotaStatus(found)) out.log(l);
  for (const p of missing) out.log(`pool ${p}: no admission workflow yet (it starts with the first GPU lease, or forgeline quota apply)`);
  if (!found.length && !missing.length) out.log('no pools: set FORGELINE_QUOTAS, or run forgeline quota apply <file>');
  return ExitCode.Ok;
}

/** `forgeline quota apply <file>`: validate, then send it to each of its pools' admission workflows. */
export async function quotaApply(admission: GpuAdmission, file: string, opts: { json?: boolean }, out: Output): Promise<number> {
  const quotas = await readQuotaFile(file);
  const applied = await admission.apply(quotas, path.resolve(file));
  if (opts.json) out.json(applied);
  else {
    out.log(`applied ${file} to ${applied.map((s) => s.pool).join(', ')}`);
    for (const l of formatQuotaStatus(applied)) out.log(l);
  }
  return ExitCode.Ok;
}

/** Adds `forgeline quota status|apply|validate`. */
export function addQuotaCommands(program: Command, out: Output, run: Run, cfg: () => ForgelineConfig, withConfigClient: WithClient): void {
  const withAdmission = <T>(fn: (admission: GpuAdmission, client: Client, c: ForgelineConfig) => Promise<T>) => {
    const c = cfg();
    return withConfigClient(c, (client) => fn(createAdmissionClient({ client, taskQueue: c.taskQueues.control, ...(c.fleet.quotas ? { quotaFile: c.fleet.quotas } : {}) }), client, c));
  };
  const quota = program.command('quota').description("teams' GPU quotas per pool and the leases the pools' admission workflows hold (see README \"Teams, quotas and admission\")");
  quota
    .command('status')
    .description('per pool and team: priority, nominal quota, borrowing limit, GPUs in use, borrowed, lent, waiting (requests), yielding')
    .option('--pool <pool>', 'one pool only (default: the pools of FORGELINE_QUOTAS, else every running admission workflow)')
    .option('--json', 'print the pools’ full status as JSON only (leases, waiting requests, recently ended leases)')
    .action(run(async (opts: { pool?: string; json?: boolean }) => withAdmission(async (admission, client, c) => quotaStatus(admission, await poolsToShow(client, c, opts.pool), opts, out))));
  quota
    .command('apply <file>')
    .description("validate a quota file, then give it to each of its pools' admission workflow (starting those not running); waiting requests it makes impossible are refused")
    .option('--json', 'print the pools’ status after, as JSON only')
    .action(
      run(async (file: string, opts: { json?: boolean }) => {
        await readQuotaFile(file); // a bad file is refused before connecting to Temporal
        return withAdmission((admission) => quotaApply(admission, file, opts, out));
      }),
    );
  quota
    .command('validate <file>')
    .description('check a quota file without applying it: every problem with its field, line and fix')
    .action(
      run(async (file: string) => {
        const q = await readQuotaFile(file);
        out.log(`${file}: valid (${Object.keys(q.pools).length} pool(s), ${Object.keys(q.teams).length} team(s))`);
        return ExitCode.Ok;
      }),
    );
}
