import { z } from 'zod';
import { DriftCheckSpecSchema } from './index';
import type { EmbeddingDriftSpec } from '../contracts/embedding-drift';
import { EMBEDDING_MODELS } from '../contracts/reembed-spec';
import { ReembedSpecSchema } from '../contracts/specs/reembed-spec';

/**
 * The input of `embeddingDriftWorkflow`: one JSON object, validated at the edge (CLI, schedule
 * apply) and again as the workflow's first activity.
 */
const duration = z.string().regex(/^[1-9]\d{0,5}(s|m|h|d)$/, 'expected a duration such as 90s, 30m, 24h or 7d');
const vectorName = (what: string) => z.string().regex(/^[a-z][a-z0-9_]{0,47}$/, `expected a ${what} name: a lowercase letter, then up to 47 lowercase letters, digits or _`);
const count = (what: string, min: number, max: number) =>
  z
    .number({ error: `expected a whole number of ${what}` })
    .int(`expected a whole number of ${what}`)
    .min(min, `expected at least ${min} ${what}`)
    .max(max, `expected at most ${max} ${what}`);
const MODELS = Object.keys(EMBEDDING_MODELS) as [keyof typeof EMBEDDING_MODELS, ...Array<keyof typeof EMBEDDING_MODELS>];
const artifactKey = (what: string) => z.string().regex(/^[^/]/, `expected a key in the artifact store (${what}), without a leading /`);

export const EmbeddingDriftSpecSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a check name like docs-queries (lowercase letters, digits, dashes)'),
    model: z.enum(MODELS, { error: `unknown embedding model: the workers have ${MODELS.join(', ')}` }).default(MODELS[0]),
    fresh: z.union(
      [
        z.strictObject({
          queries: z.union(
            [z.strictObject({ file: z.string().min(1, 'expected a JSON-lines file of {"query": "..."} objects') }), z.strictObject({ artifact: artifactKey('JSON lines of {"query": "..."}') })],
            { error: 'expected { "file": "/path/queries.jsonl" } or { "artifact": "samples/queries.jsonl" }' },
          ),
        }),
        z.strictObject({
          documents: z.strictObject({
            source: z.union(
              [
                z.strictObject({ folder: z.string().min(1, 'expected a directory of new .txt, .md and .html documents') }),
                z.strictObject({ artifactPrefix: z.string().regex(/^[^/].*\/$/, 'expected a key prefix in the artifact store ending in /, e.g. incoming/docs/') }),
              ],
              { error: 'expected { "folder": "/dir/of/new/documents" } or { "artifactPrefix": "incoming/docs/" }' },
            ),
            /** Default: the reference version's chunking (its manifest), else 512/64. */
            chunking: z
              .strictObject({
                chunkTokens: count('tokens', 16, 1024),
                overlapTokens: count('tokens', 0, 1023),
              })
              .refine((c) => c.overlapTokens < c.chunkTokens, { message: 'expected overlapTokens below chunkTokens', path: ['overlapTokens'] })
              .optional(),
          }),
        }),
        z.strictObject({
          traffic: z.strictObject({
            alias: z.string().min(1, 'expected the public model alias the gateway routes'),
            window: duration.default('24h'),
          }),
        }),
      ],
      { error: 'expected { "documents": { "source": { "folder": ... } } }, { "queries": { "file": ... } } or { "traffic": { "alias": ..., "window": "24h" } }' },
    ),
    reference: z.union(
      [z.strictObject({ store: z.strictObject({ index: vectorName('index'), alias: vectorName('alias').default('live') }) }), z.strictObject({ artifact: artifactKey('a float32 .npy, rows × model width') })],
      { error: 'expected { "store": { "index": "docs", "alias": "live" } } or { "artifact": "drift/reference/docs.npy" }' },
    ),
    maxSamples: count('texts', 2, 100_000).default(2000),
    minSamples: count('texts', 2, 100_000).default(20),
    referenceSamples: count('vectors', 2, 100_000).default(2000),
    checks: z.array(DriftCheckSpecSchema).min(1, 'expected at least one check, e.g. [{ "method": "mmd" }]').default([{ method: 'model' }]),
    onBreach: z
      .discriminatedUnion('policy', [z.strictObject({ policy: z.literal('alert') }), z.strictObject({ policy: z.literal('reembed'), reembed: ReembedSpecSchema })], {
        error: 'expected { "policy": "alert" } or { "policy": "reembed", "reembed": <re-embed spec> }',
      })
      .default({ policy: 'alert' }),
  })
  .refine((s) => s.minSamples <= s.maxSamples, { message: 'minSamples is more than maxSamples: no check could ever decide', path: ['minSamples'] })
  .superRefine((s, ctx) => {
    if (s.onBreach.policy !== 'reembed') return;
    const r = s.onBreach.reembed;
    if (!('store' in s.reference)) {
      ctx.addIssue({ code: 'custom', path: ['reference'], message: 'policy reembed needs reference.store: the re-embed replaces the version that alias points at' });
      return;
    }
    const ref = s.reference.store;
    if (ref.index !== r.store.index || ref.alias !== r.store.alias) {
      ctx.addIssue({ code: 'custom', path: ['onBreach', 'reembed', 'store'], message: `the re-embed writes ${r.store.index}/${r.store.alias}, the check reads ${ref.index}/${ref.alias}: they must be the same index and alias` });
    }
    if (r.embedding.model !== s.model) {
      ctx.addIssue({ code: 'custom', path: ['model'], message: `the check embeds with ${s.model}, the re-embed with ${r.embedding.model}: use the same model` });
    }
  });

export type EmbeddingDriftSpecInput = z.input<typeof EmbeddingDriftSpecSchema>;

// The schema's output and the plain type workflows see must agree.
type _Same = z.output<typeof EmbeddingDriftSpecSchema> extends EmbeddingDriftSpec ? (EmbeddingDriftSpec extends z.output<typeof EmbeddingDriftSpecSchema> ? true : never) : never;
export const _embeddingDriftSpecTypesAgree: _Same = true;
