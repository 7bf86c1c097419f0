import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import type { ForgelineConfig } from '../config/schema';
import { gpuTaskQueue } from '../contracts/task-queues';
import { autoscalerStatusFile, nvidiaSmiUtilization, readAutoscalerStatus, readBacklog, type PoolStatus } from '../fleet/autoscaler';
import { ExitCode, UsageError } from './errors';
import type { Output } from './output';

type Run = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;
type WithClient = <T>(cfg: ForgelineConfig, fn: (client: Client) => Promise<T>) => Promise<T>;

/** Is the process that wrote the status file still there? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The configured pools, or a usage error saying how to configure some. */
function autoscaledPools(cfg: ForgelineConfig): NonNullable<ForgelineConfig['autoscale']>['pools'] {
  const pools = cfg.autoscale?.pools;
  if (!pools || Object.keys(pools).length === 0) throw new UsageError('no autoscaled pools: set FORGELINE_AUTOSCALE (or `autoscale` in forgeline.config.json), e.g. {"pools": {"cpu": {"min": 0, "max": 2}}}');
  return pools;
}

/**
 * `forgeline autoscale status [--json]`: per configured pool, the backlog read from Temporal now
 * and, when `forgeline dev` runs its autoscaler on this FORGELINE_HOME, its workers and last decision.
 */
export async function autoscaleStatus(client: Client, cfg: ForgelineConfig, opts: { json?: boolean }, out: Output): Promise<number> {
  const pools = autoscaledPools(cfg);
  const file = autoscalerStatusFile(cfg.home);
  const written = readAutoscalerStatus(file);
  const running = written !== undefined && alive(written.pid);
  const utilization = await nvidiaSmiUtilization();
  const rows = await Promise.all(
    Object.entries(pools).map(async ([pool, policy]) => {
      const last: PoolStatus | undefined = running ? written.pools.find((p) => p.pool === pool) : undefined;
      const backlog = await readBacklog(client, cfg.temporal.namespace, pool);
      return { pool, taskQueue: gpuTaskQueue(pool), policy, backlog: backlog.backlog, backlogAgeSeconds: backlog.backlogAgeSeconds, gpuUtilizationPercent: utilization ?? null, workers: last?.workers ?? null, stopping: last?.stopping ?? null, lastDecision: last?.decision ?? null, lastDecisionAt: last?.at ?? null };
    }),
  );
  if (opts.json) {
    out.json({ autoscaler: running ? { pid: written.pid, statusFile: file } : null, pools: rows });
    return ExitCode.Ok;
  }
  out.log(running ? `autoscaler running (forgeline dev, pid ${written.pid})` : `no autoscaler running on ${cfg.home} (forgeline dev starts one when FORGELINE_AUTOSCALE is set)`);
  out.log(`GPU utilisation: ${utilization === undefined ? 'none (no nvidia-smi answer: the backlog is the only signal)' : `${Math.round(utilization)}%`}`);
  for (const r of rows) {
    const p = r.policy;
    out.log(`${r.taskQueue}: backlog ${r.backlog}${r.backlog ? ` (oldest ${Math.round(r.backlogAgeSeconds)}s)` : ''}; ${r.workers === null ? 'workers ?' : `${r.workers} worker(s)${r.stopping ? `, ${r.stopping} stopping` : ''}`} of ${p.min}..${p.max}; target ${p.targetQueueSize} per worker`);
    if (r.lastDecision) out.log(`  last decision (${r.lastDecisionAt}): ${r.lastDecision.current} → ${r.lastDecision.desired}: ${r.lastDecision.reason}`);
  }
  return ExitCode.Ok;
}

export function addAutoscaleCommands(program: Command, out: Output, run: Run, cfg: () => ForgelineConfig, withClient: WithClient): void {
  const autoscale = program.command('autoscale').description('the dev stack\'s autoscaler of GPU worker processes (FORGELINE_AUTOSCALE)');
  autoscale
    .command('status')
    .description('per autoscaled pool: the gpu-<pool> backlog now, and the running autoscaler\'s workers and last decision')
    .option('--json', 'print machine-readable JSON only: {autoscaler, pools}')
    .action(
      run(async (opts: { json?: boolean }) => {
        const c = cfg();
        autoscaledPools(c); // before connecting: a missing config is a usage error, not an unreachable server
        return withClient(c, (client) => autoscaleStatus(client, c, opts, out));
      }),
    );
}
