/**
 * Embedding drift of a vector index: fresh texts (sampled queries, gateway traffic, or new
 * documents) embedded with the index's model and compared with the reference embeddings of the
 * version the alias points at, with the model drift monitor's functions (src/drift: one
 * implementation). Plain types and pure functions, safe in workflow code; the zod schema lives in
 * src/drift/embedding-drift-spec.ts.
 */
import type { DriftCheckSpec } from '../drift';
import type { EmbeddingModel, ReembedSpec } from './reembed-spec';

/** Where the fresh texts come from. */
export type FreshSource =
  /**
   * New documents (a landing folder or artifact prefix), chunked as the reference version was
   * (its manifest's chunking) unless `chunking` is given: compare with the index's vectors.
   */
  | { documents: { source: { folder: string } | { artifactPrefix: string }; chunking?: { chunkTokens: number; overlapTokens: number } } }
  /** JSON lines with a `query` (or `text`) string each: sampled search queries (compare with a reference of queries, `reference.artifact`). */
  | { queries: { file: string } | { artifact: string } }
  /** The gateway's sampled traffic to a model alias over the last `window` (prompts). */
  | { traffic: { alias: string; window: string } };

/** What the fresh texts are compared with. */
export type ReferenceSource =
  /**
   * The version `alias` points at in the vector store: a seeded sample of its vectors (ids from the
   * version's chunk manifest, vectors fetched from the store), cached per version in the artifact store.
   */
  | { store: { index: string; alias: string } }
  /** A 2-D float32 .npy in the artifact store (rows × model width). */
  | { artifact: string };

export type BreachPolicy = { policy: 'alert' } | { policy: 'reembed'; reembed: ReembedSpec };

export interface EmbeddingDriftSpec {
  /** Names this check in workflow IDs, tracker runs and search attributes, e.g. `docs-queries`. */
  name: string;
  /** The embedding model of the index (the fresh texts are embedded with it). */
  model: EmbeddingModel;
  fresh: FreshSource;
  reference: ReferenceSource;
  /** Most fresh texts embedded (a seeded sample beyond that). */
  maxSamples: number;
  /** Fewer fresh texts than this: inconclusive, no verdict. */
  minSamples: number;
  /** Most reference vectors sampled from the store. */
  referenceSamples: number;
  /** The drift checks (method and threshold each, Evidently's defaults otherwise); a breach when any one drifts. */
  checks: DriftCheckSpec[];
  onBreach: BreachPolicy;
}

/** One method's verdict (src/drift DriftResult without its timing). */
export interface EmbeddingDriftVerdict {
  method: string;
  drifted: boolean;
  score: number;
  threshold: number;
  details: Record<string, number | string | boolean>;
}

/** What `checkEmbeddingDrift` measured. */
export interface EmbeddingDriftCheck {
  at: string;
  /** Where the reference came from: the store version (alias resolved at check time) or the artifact key. */
  reference: { index?: string; alias?: string; version?: string; key: string; rows: number };
  fresh: { source: string; texts: number; samples: number };
  inconclusive: boolean;
  verdicts: EmbeddingDriftVerdict[];
  /** One line per drifted check; empty: no drift (or inconclusive). */
  breaches: string[];
}

export interface EmbeddingDriftAction {
  policy: 'alert' | 'reembed';
  /** The re-embed's workflow ID (policy reembed). */
  workflowId?: string;
  /** False when a re-embed with this ID was already running or done (a double breach starts one). */
  started?: boolean;
  note: string;
}

export interface EmbeddingDriftResult {
  name: string;
  check: EmbeddingDriftCheck;
  drifted: boolean;
  /** Set on a breach: what the policy did. */
  action?: EmbeddingDriftAction;
}

/**
 * The re-embed a breach starts: one per index, alias and reference version, so a second breach
 * against the same version (the next scheduled check, a check run by hand) finds it running or
 * done instead of starting another; once it swaps the alias, breaches against the new version may
 * start the next one.
 */
export function driftReembedWorkflowId(corpus: string, referenceVersion: string): string {
  return `reembed/${corpus}/drift-${referenceVersion}`;
}

/** The reference cache key of a store version (one per index, version, model and sample size). */
export function storeReferenceKey(index: string, version: string, model: string, samples: number): string {
  return `embedding-drift/reference/${index}/${version}/${model.replace(/[^A-Za-z0-9._-]+/g, '_')}.n${samples}.npy`;
}

/** The breach line of one drifted verdict: method, score, threshold and the row counts. */
export function breachLine(v: EmbeddingDriftVerdict, fresh: number, reference: number): string {
  const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(3));
  return `embedding drift: ${v.method} score ${fmt(v.score)} > threshold ${fmt(v.threshold)} (${fresh} fresh vs ${reference} reference embeddings)`;
}

/** ForgelineOutcome of an embedding drift check, for filtering in the Temporal UI (`ForgelineOutcome = "Drifted"`). */
export const EmbeddingDriftOutcome = {
  Drifted: 'Drifted',
  NoDrift: 'NoDrift',
  Inconclusive: 'Inconclusive',
} as const;
export type EmbeddingDriftOutcome = (typeof EmbeddingDriftOutcome)[keyof typeof EmbeddingDriftOutcome];
