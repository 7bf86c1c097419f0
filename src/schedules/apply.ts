/**
 * `forgeline schedule apply`: make Temporal's Schedules match a schedules file. A plan first
 * (create / update / delete / unchanged, per-field changes), then the changes. Idempotent: a
 * second apply of the same file plans nothing.
 *
 * What apply manages: schedules it created carry the memo `forgeline: {managed: true, group}`
 * (a schedule's memo cannot change after creation, so the mark is permanent). A schedule with an
 * ID from the file that is not so marked (made by hand, or by another group) is refused, never
 * taken over. Deletions are planned for the group's schedules missing from the file, and made only
 * with `prune`.
 *
 * How the diff reads the live schedule: workflow, task queue, input, overlap, catchup window and
 * pause-on-failure from the schedule itself (so an edit in the Temporal UI shows up); the
 * calendar (cron, every, offset, time zone, jitter) and the backfills already run from the
 * declaration apply stores in the action's memo (`forgelineSchedule`), because Temporal keeps cron
 * strings only as compiled calendars.
 */
import type { Backfill, Client, ScheduleDescription, ScheduleOptions, ScheduleOverlapPolicy, ScheduleSummary } from '@temporalio/client';
import { durationMs, type OverlapPolicy, type ScheduleEntry, type SchedulesFile } from './file';

export const MANAGED_MEMO = 'forgeline';
export const DECLARATION_MEMO = 'forgelineSchedule';

/** The calendar as the file declared it, stored in the action memo. */
export interface Declared {
  cron: string[];
  every: string | null;
  offset: string | null;
  timezone: string;
  jitter: string;
  description: string | null;
  /** `from/to` of each backfill already run. */
  backfills: string[];
}

/** One schedule's fields as compared: the file's side, or the live side read back. */
interface Fields {
  workflow: string;
  taskQueue: string;
  input: unknown;
  cron: string[];
  every: string | null;
  offset: string | null;
  timezone: string;
  jitter: string;
  overlap: OverlapPolicy;
  catchupWindow: number;
  pauseOnFailure: boolean;
  description: string | null;
  paused: boolean;
}

export interface FieldChange {
  field: string;
  from: unknown;
  to: unknown;
}

export type PlanOp = 'create' | 'update' | 'delete' | 'unchanged';

export interface PlanItem {
  id: string;
  op: PlanOp;
  workflow: string;
  changes: FieldChange[];
  /** Backfills of the file not run yet (run on create and update). */
  backfills: Array<{ from: Date; to: Date; overlap?: OverlapPolicy }>;
  /** The entry of the file (create, update, unchanged). */
  entry?: ScheduleEntry;
}

export interface Plan {
  group: string;
  items: PlanItem[];
}

/** The file's overlap names as Temporal's. */
export const OVERLAP: Record<OverlapPolicy, ScheduleOverlapPolicy> = {
  skip: 'SKIP',
  buffer_one: 'BUFFER_ONE',
  buffer_all: 'BUFFER_ALL',
  cancel_other: 'CANCEL_OTHER',
  terminate_other: 'TERMINATE_OTHER',
  allow_all: 'ALLOW_ALL',
};
const FROM_OVERLAP = Object.fromEntries(Object.entries(OVERLAP).map(([k, v]) => [v, k])) as Record<string, OverlapPolicy>;

/** JSON with sorted keys: equal values, equal text. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Date) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
}

const backfillKey = (b: { from: Date; to: Date }) => `${b.from.toISOString()}/${b.to.toISOString()}`;

/** The dotted paths where two JSON values differ (leaves), for a readable input diff. */
function jsonChanges(prefix: string, a: unknown, b: unknown, out: FieldChange[]): void {
  const isObj = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);
  if (isObj(a) && isObj(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) jsonChanges(`${prefix}.${k}`, a[k], b[k], out);
    return;
  }
  if (canonical(a) !== canonical(b)) out.push({ field: prefix, from: a, to: b });
}

function desiredFields(e: ScheduleEntry, defaultTaskQueue: string): Fields {
  return {
    workflow: e.workflow,
    taskQueue: e.taskQueue ?? defaultTaskQueue,
    input: e.input,
    cron: e.cron === undefined ? [] : Array.isArray(e.cron) ? e.cron : [e.cron],
    every: e.every ?? null,
    offset: e.offset ?? null,
    timezone: e.timezone,
    jitter: e.jitter,
    overlap: e.overlap,
    catchupWindow: durationMs(e.catchupWindow),
    pauseOnFailure: e.pauseOnFailure,
    description: e.description ?? null,
    paused: e.paused ?? false,
  };
}

function declaredOf(d: ScheduleDescription): Declared | undefined {
  const memo = d.action.memo?.[DECLARATION_MEMO];
  return memo && typeof memo === 'object' ? (memo as Declared) : undefined;
}

function liveFields(d: ScheduleDescription): Fields {
  const decl = declaredOf(d);
  return {
    workflow: d.action.workflowType,
    taskQueue: d.action.taskQueue,
    input: d.action.args?.[0],
    cron: decl?.cron ?? [],
    every: decl?.every ?? null,
    offset: decl?.offset ?? null,
    timezone: decl?.timezone ?? d.spec.timezone ?? 'UTC',
    jitter: decl?.jitter ?? '0',
    overlap: FROM_OVERLAP[d.policies.overlap ?? 'SKIP'] ?? 'skip',
    catchupWindow: d.policies.catchupWindow,
    pauseOnFailure: d.policies.pauseOnFailure,
    description: decl?.description ?? null,
    paused: d.state.paused,
  };
}

function diffFields(from: Fields, to: Fields, comparePaused: boolean): FieldChange[] {
  const out: FieldChange[] = [];
  for (const k of Object.keys(to) as Array<keyof Fields>) {
    if (k === 'paused' && !comparePaused) continue;
    if (k === 'input') jsonChanges('input', from.input, to.input, out);
    else if (canonical(from[k]) !== canonical(to[k])) out.push({ field: k, from: from[k], to: to[k] });
  }
  return out;
}

/** Whether a schedule's memo marks it as apply's, and for which group. */
function managedGroup(memo: Record<string, unknown> | undefined): string | undefined {
  const m = memo?.[MANAGED_MEMO] as { managed?: unknown; group?: unknown } | undefined;
  return m?.managed === true && typeof m.group === 'string' ? m.group : undefined;
}

/** A schedule ID from the file is taken by a schedule apply does not manage (or another group's). */
export class ScheduleOwnershipError extends Error {}

async function describeIfExists(client: Client, id: string): Promise<ScheduleDescription | undefined> {
  try {
    return await client.schedule.getHandle(id).describe();
  } catch (err) {
    if ((err as Error).name === 'ScheduleNotFoundError') return undefined;
    throw err;
  }
}

/**
 * Read the live schedules and compute what apply would do. Reads only. Entries of the file are
 * described one by one (authoritative); schedules to delete come from the listing (visibility,
 * eventually consistent: one created a moment ago by another apply may show up only next time).
 */
export async function planSchedules(client: Client, file: SchedulesFile, defaultTaskQueue: string): Promise<Plan> {
  const summaries = new Map<string, ScheduleSummary>();
  for await (const s of client.schedule.list()) summaries.set(s.scheduleId, s);
  const items: PlanItem[] = [];
  const wanted = new Set(file.schedules.map((e) => e.id));
  for (const e of file.schedules) {
    const desired = desiredFields(e, defaultTaskQueue);
    // The listing comes from visibility, which lags behind writes: ask the schedule itself.
    const d = await describeIfExists(client, e.id);
    if (!d) {
      items.push({ id: e.id, op: 'create', workflow: e.workflow, changes: diffFields({} as Fields, desired, e.paused !== undefined).map((c) => ({ ...c, from: undefined })), backfills: e.backfill, entry: e });
      continue;
    }
    const group = managedGroup(d.memo);
    if (group === undefined) throw new ScheduleOwnershipError(`schedule ${e.id} exists but was not made by forgeline schedule apply (no forgeline memo): delete it (forgeline schedule delete ${e.id}) or give the entry another id`);
    if (group !== file.group) throw new ScheduleOwnershipError(`schedule ${e.id} belongs to group ${group}, this file is group ${file.group}: one schedule, one file`);
    const done = new Set(declaredOf(d)?.backfills ?? []);
    const backfills = e.backfill.filter((b) => !done.has(backfillKey(b)));
    const changes = diffFields(liveFields(d), desired, e.paused !== undefined);
    for (const b of backfills) changes.push({ field: 'backfill', from: undefined, to: `${backfillKey(b)}${b.overlap ? ` (overlap ${b.overlap})` : ''}` });
    items.push({ id: e.id, op: changes.length ? 'update' : 'unchanged', workflow: e.workflow, changes, backfills, entry: e });
  }
  for (const [id, s] of summaries) {
    if (wanted.has(id) || managedGroup(s.memo) !== file.group) continue;
    items.push({ id, op: 'delete', workflow: s.action?.workflowType ?? '?', changes: [], backfills: [] });
  }
  return { group: file.group, items };
}

function declaration(e: ScheduleEntry, done: readonly string[]): Declared {
  const f = desiredFields(e, '');
  return { cron: f.cron, every: f.every, offset: f.offset, timezone: f.timezone, jitter: f.jitter, description: f.description, backfills: [...new Set([...done, ...e.backfill.map(backfillKey)])] };
}

/** The Schedule's spec, action and policies for an entry (`done`: backfills already run). */
export function scheduleOptions(e: ScheduleEntry, defaultTaskQueue: string, done: readonly string[] = []): Pick<ScheduleOptions, 'spec' | 'action' | 'policies'> {
  const f = desiredFields(e, defaultTaskQueue);
  return {
    spec: {
      ...(f.cron.length ? { cronExpressions: f.cron } : {}),
      ...(f.every ? { intervals: [{ every: durationMs(f.every), offset: f.offset ? durationMs(f.offset) : 0 }] } : {}),
      timezone: f.timezone,
      jitter: durationMs(f.jitter),
    },
    action: {
      type: 'startWorkflow',
      workflowType: e.workflow,
      args: [e.input],
      taskQueue: f.taskQueue,
      // Temporal appends each run's scheduled time: `<id>-2026-12-03T02:00:00Z`.
      workflowId: e.id,
      memo: { [DECLARATION_MEMO]: declaration(e, done) },
      ...(e.description ? { staticSummary: e.description.slice(0, 200) } : {}),
    },
    policies: { overlap: OVERLAP[f.overlap], catchupWindow: f.catchupWindow, pauseOnFailure: f.pauseOnFailure },
  };
}

const toBackfill = (b: { from: Date; to: Date; overlap?: OverlapPolicy }): Backfill => ({ start: b.from, end: b.to, ...(b.overlap ? { overlap: OVERLAP[b.overlap] } : {}) });

export interface ApplyResult {
  created: string[];
  updated: string[];
  deleted: string[];
  /** Deletions planned but not made (apply without prune). */
  keptForPrune: string[];
  backfilled: Array<{ id: string; range: string }>;
}

/** Carry out a plan. Deletes only with `prune`. */
export async function applyPlan(client: Client, plan: Plan, defaultTaskQueue: string, opts: { prune: boolean }): Promise<ApplyResult> {
  const r: ApplyResult = { created: [], updated: [], deleted: [], keptForPrune: [], backfilled: [] };
  for (const item of plan.items) {
    const e = item.entry;
    if (item.op === 'create' && e) {
      await client.schedule.create({
        scheduleId: e.id,
        ...scheduleOptions(e, defaultTaskQueue),
        memo: { [MANAGED_MEMO]: { managed: true, group: plan.group } },
        state: { paused: e.paused ?? false, ...(e.description ? { note: e.description } : {}), ...(e.backfill.length ? { backfill: e.backfill.map(toBackfill) } : {}) },
      });
      r.created.push(e.id);
      for (const b of e.backfill) r.backfilled.push({ id: e.id, range: backfillKey(b) });
    } else if (item.op === 'update' && e) {
      const handle = client.schedule.getHandle(e.id);
      await handle.update((prev) => {
        const done = declaredOf(prev)?.backfills ?? [];
        return {
          ...scheduleOptions(e, defaultTaskQueue, done),
          state: { paused: e.paused ?? prev.state.paused, ...(prev.state.note !== undefined ? { note: prev.state.note } : {}), ...(prev.state.remainingActions !== undefined ? { remainingActions: prev.state.remainingActions } : {}) },
        };
      });
      if (item.backfills.length) await handle.backfill(item.backfills.map(toBackfill));
      r.updated.push(e.id);
      for (const b of item.backfills) r.backfilled.push({ id: e.id, range: backfillKey(b) });
    } else if (item.op === 'delete') {
      if (!opts.prune) {
        r.keptForPrune.push(item.id);
        continue;
      }
      await client.schedule
        .getHandle(item.id)
        .delete()
        .catch((err: Error) => {
          if (err.name !== 'ScheduleNotFoundError') throw err; // listed a moment after someone else deleted it
        });
      r.deleted.push(item.id);
    }
  }
  return r;
}

/** Milliseconds as the file writes them: `6h`, `90s`. */
function msText(ms: number): string {
  for (const [unit, n] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) if (ms % n === 0) return `${ms / n}${unit}`;
  return `${ms}ms`;
}
const show = (field: string, v: unknown) => (v === undefined ? '(unset)' : field === 'catchupWindow' && typeof v === 'number' ? msText(v) : typeof v === 'string' ? JSON.stringify(v) : canonical(v));
/** Left out of a create's listing: what the entry does not set. */
const unset = (v: unknown) => v === null || v === undefined || (Array.isArray(v) && v.length === 0);

/** The plan as a person reads it: one line per schedule, then its field changes. */
export function formatPlan(plan: Plan, opts: { prune: boolean }): string[] {
  const sign: Record<PlanOp, string> = { create: '+', update: '~', delete: '-', unchanged: '=' };
  const lines: string[] = [];
  for (const item of plan.items) {
    const note = item.op === 'delete' && !opts.prune ? ' (not in the file; kept: pass --prune to delete)' : '';
    lines.push(`${sign[item.op]} ${item.op} ${item.id} (${item.workflow})${note}`);
    if (item.op === 'unchanged' || item.op === 'delete') continue;
    for (const c of item.changes) {
      if (item.op === 'create' && unset(c.to)) continue;
      lines.push(item.op === 'create' ? `    ${c.field}: ${show(c.field, c.to)}` : `    ${c.field}: ${show(c.field, c.from)} → ${show(c.field, c.to)}`);
    }
  }
  const n = (op: PlanOp) => plan.items.filter((i) => i.op === op).length;
  lines.push(`plan (group ${plan.group}): ${n('create')} to create, ${n('update')} to update, ${n('delete')} to delete${n('delete') && !opts.prune ? ' (with --prune)' : ''}, ${n('unchanged')} unchanged`);
  return lines;
}

/** Whether the plan changes anything (deletions count only with prune). */
export function planChanges(plan: Plan, opts: { prune: boolean }): boolean {
  return plan.items.some((i) => i.op === 'create' || i.op === 'update' || (i.op === 'delete' && opts.prune));
}
