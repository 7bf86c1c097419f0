/**
 * `forgeline.yaml`, at the root of a repository that pushes to the webhook receiver: which pushes
 * start which lifecycle. Each entry names a kind, the branches (globs) and the changed paths
 * (globs) that trigger it, and for a model release or a re-embed the spec file in the repository.
 * Every problem names the field path and its line.
 */
import path from 'node:path';
import picomatch from 'picomatch';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { lineOf } from '../schedules/file';

export const FORGELINE_YAML = 'forgeline.yaml';

/** The lifecycles a push can start, and the workflow type each starts. */
export const WEBHOOK_LIFECYCLES = {
  'model-release': 'modelReleaseWorkflow',
  'prompt-release': 'promptReleaseWorkflow',
  reembed: 'reembedCorpusWorkflow',
} as const;
export type WebhookLifecycle = keyof typeof WEBHOOK_LIFECYCLES;
const KINDS = Object.keys(WEBHOOK_LIFECYCLES) as [WebhookLifecycle, ...WebhookLifecycle[]];

const glob = z.string().min(1, 'expected a glob such as main, release/*, prompts/** or training/*.yaml');
const globs = (what: string) => z.array(glob, { error: `expected a list of ${what} globs, e.g. [main]` }).min(1, `expected at least one ${what} glob`);
const repoFile = z
  .string()
  .min(1)
  .refine((f) => !path.posix.isAbsolute(f) && !path.posix.normalize(f).startsWith('..'), 'expected a path inside the repository, relative to its root, e.g. releases/support-bot.json');

const EntrySchema = z
  .strictObject({
    /** Part of the workflow ID; default: the kind. Unique in the file. */
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a name like support-bot (lowercase letters, digits, dashes)')
      .optional(),
    kind: z.enum(KINDS, { error: `expected one of ${KINDS.join(', ')}` }),
    branches: globs('branch'),
    paths: globs('path'),
    /** Release spec (model-release) or reembed spec (reembed), JSON or YAML, in the repository. */
    spec: repoFile.optional(),
  })
  .superRefine((e, ctx) => {
    if (e.kind !== 'prompt-release' && e.spec === undefined) {
      ctx.addIssue({ code: 'custom', path: ['spec'], message: `a ${e.kind} needs spec: the ${e.kind === 'reembed' ? 'reembed' : 'release'} spec file in the repository, e.g. ${e.kind === 'reembed' ? 'reembed/support-docs.json' : 'releases/support-bot.json'}` });
    }
  });

export const ForgelineYamlSchema = z.strictObject({
  version: z.literal(1, { error: 'expected version: 1' }),
  lifecycles: z
    .array(EntrySchema, { error: 'expected a list of lifecycles (kind, branches, paths, spec)' })
    .min(1, 'expected at least one lifecycle')
    .superRefine((entries, ctx) => {
      const seen = new Map<string, number>();
      entries.forEach((e, i) => {
        const name = e.name ?? e.kind;
        const first = seen.get(name);
        if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate lifecycle name ${name} (also lifecycles.[${first}]): give each a distinct name, it is part of the workflow ID` });
        else seen.set(name, i);
      });
    }),
});
export type ForgelineYaml = z.output<typeof ForgelineYamlSchema>;
export type LifecycleEntry = ForgelineYaml['lifecycles'][number];

/** A forgeline.yaml (or a spec file it names) that cannot be used; the message lists every problem. */
export class ForgelineYamlError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length === 1 ? problems[0] : `${problems.length} problems: ${problems.join('; ')}`}`);
  }
}

/** Parse YAML (JSON is YAML) and report syntax errors with their line and column. */
export function parseYamlText(text: string, file: string): { value: unknown; where: (p: readonly PropertyKey[]) => string } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ForgelineYamlError(file, doc.errors.map((e) => `line ${e.linePos?.[0].line ?? '?'}, column ${e.linePos?.[0].col ?? '?'}: invalid YAML (${e.message.split('\n')[0]})`));
  }
  return {
    value: doc.toJS({ maxAliasCount: 100 }),
    where: (p) => {
      const line = lineOf(doc, lines, p);
      return line === undefined ? '' : ` (line ${line})`;
    },
  };
}

/** Parse and validate forgeline.yaml; every problem as `field.path (line N): message`. */
export function parseForgelineYaml(text: string, file = FORGELINE_YAML): ForgelineYaml {
  const { value, where } = parseYamlText(text, file);
  const parsed = ForgelineYamlSchema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  throw new ForgelineYamlError(
    file,
    parsed.error.issues.map((i) => {
      const p = i.path.map((k) => (typeof k === 'symbol' ? String(k) : k));
      const field = p.length ? p.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('').replace(/^\./, '') : '(file)';
      return `${field}${where(p)}: ${i.message}`;
    }),
  );
}

/** Does `value` match one of the globs (`*` within a segment, `**` across segments, `?`, `{a,b}`)? */
export function matchesAny(value: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => picomatch.isMatch(value, p, { dot: true }));
}

/** The entries a push of `branch` changing `changed` triggers, each with the changed paths that matched. */
export function triggered(file: ForgelineYaml, branch: string, changed: readonly string[]): Array<{ entry: LifecycleEntry; name: string; paths: string[] }> {
  return file.lifecycles.flatMap((entry) => {
    if (!matchesAny(branch, entry.branches)) return [];
    const paths = changed.filter((c) => matchesAny(c, entry.paths));
    return paths.length ? [{ entry, name: entry.name ?? entry.kind, paths }] : [];
  });
}
