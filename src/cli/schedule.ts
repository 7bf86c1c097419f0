import { readFileSync } from 'node:fs';
import type { Client, ScheduleDescription, ScheduleHandle } from '@temporalio/client';
import { type Command, Option } from 'commander';
import type { ForgelineConfig } from '../config/schema';
import { applyPlan, formatPlan, MANAGED_MEMO, OVERLAP, planChanges, planSchedules, ScheduleOwnershipError } from '../schedules/apply';
import { OVERLAP_POLICIES, parseSchedulesFile, SchedulesFileError, type OverlapPolicy } from '../schedules/file';
import { ExitCode, UsageError } from './errors';
import type { Output } from './output';


export interface ApplyOptions {
  dryRun?: boolean;
  prune?: boolean;
  json?: boolean;
}

function readSchedules(file: string) {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${file}: ${code === 'ENOENT' ? 'file not found' : (err as Error).message}`);
  }
  try {
    return parseSchedulesFile(text, file);
  } catch (err) {
    if (err instanceof SchedulesFileError) throw new UsageError(`invalid schedules file ${err.message}`, { cause: err });
    throw err;
  }
}

/** `forgeline schedule apply <file>`: print the plan, then (unless --dry-run) make it so. */
export async function scheduleApply(client: Client, taskQueue: string, file: string, opts: ApplyOptions, out: Output): Promise<number> {
  const parsed = readSchedules(file);
  const prune = opts.prune === true;
  let plan;
  try {
    plan = await planSchedules(client, parsed, taskQueue);
  } catch (err) {
    if (err instanceof ScheduleOwnershipError) throw new UsageError(`${file}: ${err.message}`, { cause: err });
    throw err;
  }
  if (!opts.json) for (const line of formatPlan(plan, { prune })) out.log(line);
  if (opts.dryRun || !planChanges(plan, { prune })) {
    if (opts.json) out.json({ plan, applied: null });
    else out.log(opts.dryRun ? 'dry run: nothing changed' : 'nothing to do');
    return ExitCode.Ok;
  }
  const applied = await applyPlan(client, plan, taskQueue, { prune });
  if (opts.json) out.json({ plan, applied });
  else {
    out.log(`applied: ${applied.created.length} created, ${applied.updated.length} updated, ${applied.deleted.length} deleted${applied.backfilled.length ? `, ${applied.backfilled.length} backfill(s) started` : ''}`);
    if (applied.keptForPrune.length) out.log(`kept (not in the file): ${applied.keptForPrune.join(', ')}; forgeline schedule apply --prune ${file} deletes them`);
  }
  return ExitCode.Ok;
}

/** Describe a schedule, mapping "not found" to a usage error naming the ID. */
async function describe(client: Client, id: string): Promise<{ handle: ScheduleHandle; d: ScheduleDescription }> {
  const handle = client.schedule.getHandle(id);
  try {
    return { handle, d: await handle.describe() };
  } catch (err) {
    if ((err as Error).name === 'ScheduleNotFoundError') throw new UsageError(`no schedule with ID ${id}: forgeline schedule list shows them`, { cause: err });
    throw err;
  }
}

/** The small view `describe` and `list --json` print. */
export function scheduleView(d: ScheduleDescription) {
  const managed = d.memo?.[MANAGED_MEMO] as { group?: string } | undefined;
  return {
    id: d.scheduleId,
    workflow: d.action.workflowType,
    taskQueue: d.action.taskQueue,
    managedBy: managed ? `forgeline schedule apply (group ${managed.group})` : null,
    paused: d.state.paused,
    note: d.state.note ?? null,
    overlap: d.policies.overlap,
    catchupWindowMs: d.policies.catchupWindow,
    pauseOnFailure: d.policies.pauseOnFailure,
    timezone: d.spec.timezone ?? 'UTC',
    declared: d.action.memo?.forgelineSchedule ?? null,
    nextRuns: d.info.nextActionTimes.slice(0, 5).map((t) => t.toISOString()),
    recentRuns: d.info.recentActions.slice(-5).map((a) => ({ scheduledAt: a.scheduledAt.toISOString(), workflowId: a.action.workflow.workflowId })),
    running: d.info.runningActions.map((a) => a.workflow.workflowId),
    actionsTaken: d.info.numActionsTaken,
    skippedOverlap: d.info.numActionsSkippedOverlap,
    input: d.action.args?.[0],
  };
}

type Run = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;
type WithClient = <T>(cfg: ForgelineConfig, fn: (client: Client) => Promise<T>) => Promise<T>;

function instant(v: string, option: string): Date {
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`${option} ${v}: expected an ISO 8601 time, e.g. 2026-12-01T00:00:00Z`);
  return new Date(t);
}

const JSON_DONE = 'print machine-readable JSON only: {scheduleId, action, ...}';

/** Adds `forgeline schedule apply|list|describe|pause|unpause|trigger|backfill|delete`. */
export function addScheduleCommands(program: Command, out: Output, run: Run, cfg: () => ForgelineConfig, withConfigClient: WithClient): void {
  const withClient = <T>(fn: (client: Client) => Promise<T>) => withConfigClient(cfg(), fn);
  const controlQueue = () => cfg().taskQueues.control;
  /** What a schedule action did: one line, or with --json that as an object. */
  const done = (opts: { json?: boolean }, result: Record<string, unknown>, line: string) => (opts.json ? out.json(result) : out.log(line));
  const schedule = program.command('schedule').description('Temporal Schedules declared in a YAML file (nightly re-embeds, embedding drift checks, retraining): apply, and operate them');
  schedule
    .command('apply <file>')
    .description('make the schedules match the file: prints the plan (create/update/delete/unchanged, field by field), then applies it; idempotent')
    .option('--dry-run', 'print the plan only; change nothing')
    .option('--prune', "also delete this file's group's schedules that the file no longer lists (default: list them and keep them)")
    .option('--json', 'print {plan, applied} as JSON only')
    .action(
      run(async (file: string, opts: ApplyOptions) => {
        readSchedules(file); // a bad file is refused before connecting to Temporal
        return withClient((client) => scheduleApply(client, controlQueue(), file, opts, out));
      }),
    );
  schedule
    .command('list')
    .description('the schedules of the namespace: ID, workflow, paused, next run, and whether apply manages them')
    .option('--json', 'print JSON only')
    .action(
      run(async (opts: { json?: boolean }) =>
        withClient(async (client) => {
          const rows = [];
          for await (const s of client.schedule.list()) {
            const managed = s.memo?.[MANAGED_MEMO] as { group?: string } | undefined;
            rows.push({ id: s.scheduleId, workflow: s.action?.workflowType ?? '?', paused: s.state.paused, nextRun: s.info.nextActionTimes[0]?.toISOString() ?? null, group: managed?.group ?? null });
          }
          rows.sort((a, b) => (a.id < b.id ? -1 : 1));
          if (opts.json) out.json(rows);
          else if (rows.length === 0) out.log('no schedules');
          else for (const r of rows) out.log(`${r.id}  ${r.workflow}  ${r.paused ? 'PAUSED' : 'active'}  next ${r.nextRun ?? '-'}  ${r.group ? `group ${r.group}` : 'not managed by apply'}`);
          return ExitCode.Ok;
        }),
      ),
    );
  schedule
    .command('describe <id>')
    .description('a schedule as JSON: workflow, policies, the declaration apply stored, next and recent runs')
    .option('--json', 'JSON only (the default: describe always prints JSON)')
    .action(
      run(async (id: string) =>
        withClient(async (client) => {
          out.json(scheduleView((await describe(client, id)).d));
          return ExitCode.Ok;
        }),
      ),
    );
  const pauseHelp = {
    pause: 'pause a schedule (no new runs until unpause; apply leaves it paused unless the file sets paused)',
    unpause: 'resume a paused schedule',
  } as const;
  for (const verb of ['pause', 'unpause'] as const) {
    schedule
      .command(`${verb} <id>`)
      .description(pauseHelp[verb])
      .option('--note <text>', 'why, shown in the Temporal UI', `${verb}d with forgeline schedule ${verb}`)
      .option('--json', JSON_DONE)
      .action(
        run(async (id: string, opts: { note: string; json?: boolean }) =>
          withClient(async (client) => {
            await (await describe(client, id)).handle[verb](opts.note);
            done(opts, { scheduleId: id, action: verb, note: opts.note }, `${verb}d ${id}`);
            return ExitCode.Ok;
          }),
        ),
      );
  }
  schedule
    .command('trigger <id>')
    .description("start the schedule's workflow now (trigger-now), as the Temporal UI's Trigger does")
    .addOption(new Option('--overlap <policy>', 'overlap policy for this run (default: the schedule’s)').choices([...OVERLAP_POLICIES]))
    .option('--json', JSON_DONE)
    .action(
      run(async (id: string, opts: { overlap?: OverlapPolicy; json?: boolean }) =>
        withClient(async (client) => {
          await (await describe(client, id)).handle.trigger(opts.overlap ? OVERLAP[opts.overlap] : undefined);
          done(opts, { scheduleId: id, action: 'trigger', ...(opts.overlap ? { overlap: opts.overlap } : {}) }, `triggered ${id}`);
          return ExitCode.Ok;
        }),
      ),
    );
  schedule
    .command('backfill <id>')
    .description('run the schedule over a past time range, as if it had been there (the Schedule backfill API)')
    .requiredOption('--from <time>', 'start of the range, ISO 8601')
    .requiredOption('--to <time>', 'end of the range, ISO 8601')
    .addOption(new Option('--overlap <policy>', 'overlap policy for the backfilled runs (default skip)').choices([...OVERLAP_POLICIES]))
    .option('--json', JSON_DONE)
    .action(
      run(async (id: string, opts: { from: string; to: string; overlap?: OverlapPolicy; json?: boolean }) =>
        withClient(async (client) => {
          const start = instant(opts.from, '--from');
          const end = instant(opts.to, '--to');
          if (start >= end) throw new UsageError(`--from ${opts.from} is not before --to ${opts.to}`);
          await (await describe(client, id)).handle.backfill([{ start, end, ...(opts.overlap ? { overlap: OVERLAP[opts.overlap] } : {}) }]);
          done(opts, { scheduleId: id, action: 'backfill', from: start.toISOString(), to: end.toISOString() }, `backfill of ${id} from ${start.toISOString()} to ${end.toISOString()} started`);
          return ExitCode.Ok;
        }),
      ),
    );
  schedule
    .command('delete <id>')
    .description('delete a schedule (its running workflows go on); one apply manages is recreated by the next apply unless removed from the file')
    .option('--json', JSON_DONE)
    .action(
      run(async (id: string, opts: { json?: boolean }) =>
        withClient(async (client) => {
          await (await describe(client, id)).handle.delete();
          done(opts, { scheduleId: id, action: 'delete' }, `deleted ${id}`);
          return ExitCode.Ok;
        }),
      ),
    );
}
