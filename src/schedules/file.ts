/**
 * The schedules file (`forgeline schedule apply <file.yaml>`): Temporal Schedules declared in
 * YAML, validated with zod; every problem names the field path and its line in the file.
 * examples/schedules.yaml documents each field.
 */
import { isNode, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { ReembedSpecSchema } from '../contracts/specs/reembed-spec';
import { ReleaseSpecSchema } from '../contracts/specs/release-spec';
import { EmbeddingDriftSpecSchema } from '../drift/embedding-drift-spec';
import { ScheduledRetrainSpecSchema } from './retrain-spec';

/** The workflows a schedule may start, each with the schema its input is validated with before anything is applied. */
export const SCHEDULABLE_WORKFLOWS = {
  reembedCorpusWorkflow: ReembedSpecSchema,
  embeddingDriftWorkflow: EmbeddingDriftSpecSchema,
  modelReleaseWorkflow: ReleaseSpecSchema,
  /** Retraining on the newest dataset snapshot (resolved at run time): see src/contracts/scheduled-retrain.ts. */
  scheduledRetrainWorkflow: ScheduledRetrainSpecSchema,
} as const;
export type SchedulableWorkflow = keyof typeof SCHEDULABLE_WORKFLOWS;
const WORKFLOWS = Object.keys(SCHEDULABLE_WORKFLOWS) as [SchedulableWorkflow, ...SchedulableWorkflow[]];

/** Temporal's overlap policies, as the file spells them. */
export const OVERLAP_POLICIES = ['skip', 'buffer_one', 'buffer_all', 'cancel_other', 'terminate_other', 'allow_all'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION = /^(0|[1-9]\d{0,5}(s|m|h|d))$/;
/** Milliseconds of `90s`, `30m`, `24h`, `7d` (or `0`). */
export function durationMs(d: string): number {
  return d === '0' ? 0 : Number(d.slice(0, -1)) * UNIT_MS[d.slice(-1) as keyof typeof UNIT_MS];
}
const duration = (what: string) => z.string({ error: `expected ${what} as a duration such as 90s, 30m, 24h or 7d` }).regex(DURATION, `expected ${what} as a duration such as 90s, 30m, 24h or 7d`);
/** Five fields (minute hour day-of-month month day-of-week), or six with seconds first, or a @-shorthand: what Temporal's cron parser takes. */
const CRON = /^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4,5}\S+)$/;
const cron = z.string().trim().regex(CRON, 'expected a cron expression such as "0 2 * * *" (minute hour day month weekday) or @daily');
const instant = (what: string) =>
  z.union([z.date(), z.string().refine((s) => !Number.isNaN(Date.parse(s)), `expected ${what} as an ISO 8601 time, e.g. 2026-12-01T00:00:00Z`)], { error: `expected ${what} as an ISO 8601 time` }).transform((v) => new Date(v));

export const ScheduleEntrySchema = z
  .strictObject({
    /** The Schedule ID in Temporal (also the prefix of the IDs of the workflows it starts). */
    id: z.string().regex(/^[a-z0-9][a-z0-9._/-]{0,99}$/, 'expected a schedule id like docs-reembed-nightly (lowercase letters, digits, . _ / -)'),
    description: z.string().max(500, 'expected at most 500 characters').optional(),
    workflow: z.enum(WORKFLOWS, { error: `expected one of ${WORKFLOWS.join(', ')}` }),
    /** The workflow's input (its spec), validated with the workflow's own schema. */
    input: z.record(z.string(), z.unknown(), { error: 'expected the workflow input as a mapping (its spec)' }),
    /** Calendar times, Temporal cron syntax; with `every` both apply. */
    cron: z.union([cron, z.array(cron).min(1, 'expected at least one cron expression')]).optional(),
    every: duration('every').optional(),
    /** Shifts interval times: `every: 1d, offset: 2h` runs at 02:00 UTC. */
    offset: duration('offset').optional(),
    timezone: z
      .string()
      .refine((tz) => {
        try {
          new Intl.DateTimeFormat('en', { timeZone: tz });
          return true;
        } catch {
          return false;
        }
      }, 'expected an IANA time zone such as UTC or Europe/Berlin')
      .default('UTC'),
    jitter: duration('jitter').default('0'),
    overlap: z.enum(OVERLAP_POLICIES, { error: `expected one of ${OVERLAP_POLICIES.join(', ')}` }).default('skip'),
    catchupWindow: duration('catchupWindow').default('1h'),
    pauseOnFailure: z.boolean({ error: 'expected true or false' }).default(false),
    /** Set: apply makes the schedule paused or not. Unset: apply leaves the pause state as operators left it. */
    paused: z.boolean({ error: 'expected true or false' }).optional(),
    /** Time ranges to run now as if the schedule had been there (each range is run once: apply remembers it). */
    backfill: z
      .array(
        z
          .strictObject({ from: instant('from'), to: instant('to'), overlap: z.enum(OVERLAP_POLICIES, { error: `expected one of ${OVERLAP_POLICIES.join(', ')}` }).optional() })
          .refine((b) => b.from < b.to, { message: 'expected from before to', path: ['to'] }),
      )
      .default([]),
    /** Default: the control worker's task queue (FORGELINE_CONTROL_QUEUE). */
    taskQueue: z.string().min(1).optional(),
  })
  .refine((e) => e.cron !== undefined || e.every !== undefined, { message: 'expected cron or every (or both): when the schedule runs', path: ['cron'] })
  .refine((e) => e.every === undefined || durationMs(e.every) > 0, { message: 'expected a positive interval', path: ['every'] })
  .refine((e) => e.offset === undefined || e.every !== undefined, { message: 'offset applies to every: set every too', path: ['offset'] })
  .refine((e) => e.offset === undefined || e.every === undefined || durationMs(e.offset) < durationMs(e.every), { message: 'expected offset shorter than every', path: ['offset'] })
  .refine((e) => durationMs(e.catchupWindow) >= 10_000, { message: 'expected at least 10s (Temporal’s minimum catchup window)', path: ['catchupWindow'] })
  .superRefine((e, ctx) => {
    const parsed = SCHEDULABLE_WORKFLOWS[e.workflow].safeParse(e.input);
    if (!parsed.success) for (const i of parsed.error.issues) ctx.addIssue({ code: 'custom', path: ['input', ...i.path.map((p) => (typeof p === 'symbol' ? String(p) : p))], message: i.message });
  });

export const SchedulesFileSchema = z.strictObject({
  /** Schedules apply manages are marked with this group; `--prune` deletes only the group's schedules missing from the file. */
  group: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a group name like default or team-search').default('default'),
  schedules: z
    .array(ScheduleEntrySchema, { error: 'expected a list of schedules' })
    .superRefine((entries, ctx) => {
      const seen = new Map<string, number>();
      entries.forEach((e, i) => {
        const first = seen.get(e.id);
        if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate id ${e.id} (also schedules.${first}.id)` });
        else seen.set(e.id, i);
      });
    }),
});
export type ScheduleEntry = z.output<typeof ScheduleEntrySchema>;
export type SchedulesFile = z.output<typeof SchedulesFileSchema>;

/** A problem in the schedules file: what, where (field path and line), and the fix in the message. */
export class SchedulesFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length === 1 ? problems[0] : `${problems.length} problems\n${problems.map((p) => `  - ${p}`).join('\n')}`}`);
  }
}

/** The line (1-based) of the node at `path`, or of its nearest ancestor present in the document. */
export function lineOf(doc: Document, lines: LineCounter, path: readonly PropertyKey[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as unknown[], true);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}

/**
 * Parse YAML (JSON is YAML) and validate it against `schema`: the value, or every problem as
 * `field.path (line N): message` (a syntax error as `line N, column M: invalid YAML (...)`).
 */
export function parseYamlWith<S extends z.ZodType>(schema: S, text: string): { ok: true; value: z.output<S> } | { ok: false; problems: string[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return { ok: false, problems: doc.errors.map((e) => `line ${e.linePos?.[0].line ?? '?'}, column ${e.linePos?.[0].col ?? '?'}: invalid YAML (${e.message.split('\n')[0]})`) };
  }
  const parsed = schema.safeParse(doc.toJS({ maxAliasCount: 100 }) ?? {});
  if (parsed.success) return { ok: true, value: parsed.data };
  return {
    ok: false,
    problems: parsed.error.issues.map((i) => {
      const path = i.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
      const field = path.length ? path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '') : '(file)';
      const line = lineOf(doc, lines, path);
      return `${field}${line !== undefined ? ` (line ${line})` : ''}: ${i.message}`;
    }),
  };
}

/** Parse and validate a schedules file's text; every problem as `path (line N): message`. */
export function parseSchedulesFile(text: string, file: string): SchedulesFile {
  const r = parseYamlWith(SchedulesFileSchema, text);
  if (r.ok) return r.value;
  throw new SchedulesFileError(file, r.problems);
}
