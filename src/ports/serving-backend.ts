/**
 * Serving: the inference servers that hold base models and hot-loaded LoRA adapters. The vLLM
 * adapter (src/adapters/vllm-backend.ts) speaks vLLM's OpenAI-compatible API and its runtime
 * LoRA admin endpoints; one backend may address several replicas (a list of base URLs, or one
 * Kubernetes Service / KServe InferenceService URL).
 *
 * Rules every adapter keeps:
 * - `loadAdapter` is idempotent for the same name and path; a name is never reused for other
 *   weights (vLLM can serve stale prefix-cache blocks), so each candidate version has its own name.
 * - `unloadAdapter` of a name that is not loaded succeeds (rollback and retries call it freely).
 * - Adapter files stay where they are until the adapter is unloaded: a registered adapter whose
 *   directory disappears can kill the engine.
 */
import { ErrorType } from '../contracts/errors';
import { ForgelineError } from './errors';

export interface ServedModel {
  /** The name clients send as `model` (a base model, a quantized model or a LoRA adapter). */
  id: string;
  /** For an adapter: the base model it applies to. */
  parent?: string;
  /** Where the weights were loaded from, when the server says. */
  root?: string;
}

export interface ReplicaHealth {
  url: string;
  ok: boolean;
  error?: string;
}

export interface LoadAdapterRequest {
  /** Unique per version, e.g. `tiny-demo-v3`; never reused for other weights. */
  name: string;
  /** A directory the serving replicas can read (local path or a path mounted on every replica). */
  path: string;
  /** The base model it applies to; checked against the backend's served models when given. */
  base?: string;
}

export interface ServingBackend {
  /** Short label for logs and metrics, e.g. `vllm@http://127.0.0.1:8000`. */
  readonly label: string;
  health(): Promise<ReplicaHealth[]>;
  /** The models served by every replica (the intersection; a replica missing one is not ready). */
  listModels(): Promise<ServedModel[]>;
  loadAdapter(req: LoadAdapterRequest): Promise<void>;
  unloadAdapter(name: string): Promise<void>;
}

/**
 * A replica refused a request that retrying cannot fix (terminal): the adapter path is missing or
 * holds no adapter, the name is taken by other weights, the base model is not served there. The
 * message names the replica, the adapter and what to do. Transient faults (a replica down, 5xx,
 * timeouts) are retried inside the adapter and then surface as plain (retryable) errors.
 */
export class ServingRejectedError extends ForgelineError {
  constructor(
    /** The replica's base URL. */
    readonly replica: string,
    message: string,
    /** The HTTP status the replica answered, when it answered. */
    readonly status?: number,
  ) {
    super(ErrorType.ServingRejected, message, true);
  }
}
