import type { Embeddings } from '../drift/embeddings';

/** Progress of one `embed` call: texts embedded so far, of `total`. */
export interface EmbedProgress {
  done: number;
  total: number;
}

export interface EmbedOptions {
  /** Called as batches finish (heartbeat material for a long call). */
  onProgress?: (p: EmbedProgress) => void;
  /** Cancels the call (an activity's cancellation signal); the call rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Text embeddings for drift checks (and later the embeddings pipeline): a sentence-transformers
 * model run locally (src/adapters/sentence-transformers-embedder.ts).
 *
 * `embed(texts)` returns one float32 row per text, in order, each L2-normalized (unit length) as
 * sentence-transformers' Normalize module leaves them, `dimensions` columns wide. Deterministic
 * for one model on one machine: the same text gives the same vector. No text is an empty row
 * (an empty string still has an embedding); zero texts give a 0-row result.
 *
 * Errors: a terminal ForgelineError for what retrying cannot fix (the model missing from the
 * environment, a text that is not a string); anything else (the process crashed) is transient.
 */
export interface Embedder {
  /** Model name, stable across versions of the adapter (it names cached reference embeddings). */
  readonly model: string;
  /** Width of every row. */
  readonly dimensions: number;
  embed(texts: readonly string[], options?: EmbedOptions): Promise<Embeddings>;
}
