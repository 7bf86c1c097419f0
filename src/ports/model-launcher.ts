/**
 * Model launcher: runs an inference server for one model directory of its own (a quantized
 * candidate, compressed-tensors W4A16 from our quantize stage, is a whole model: it cannot be
 * hot-loaded into the base model's server as a LoRA adapter is), and stops it again.
 *
 * The local adapter (src/adapters/local-model-launcher.ts) starts a vLLM process per model on
 * this host. On Kubernetes the same port maps onto one KServe InferenceService (or a Deployment
 * and Service) per quantized model: `launch` creates it if absent, waits for it to be Ready and
 * returns its URL; `stop` deletes it (README "Serving on vLLM").
 *
 * Rules every adapter keeps:
 * - `launch` is idempotent by `id`: a second launch with the same id (a retried activity, another
 *   worker, a worker after a restart) finds the running server and returns it, never a second one.
 *   An id names one model: launching it again for another directory is refused (terminal).
 * - `stop` of an id that does not run succeeds (rollbacks and retries call it freely); it returns
 *   once the server is gone.
 * - What the launcher started, it can find again after its own process restarts (a state record
 *   per id), and it cleans up records of servers that died.
 */
export interface LaunchRequest {
  /** Idempotency key, e.g. `tiny-demo-3f2a1c9d8e7b-quantized`: lowercase letters, digits, `.`, `_`, `-`. */
  id: string;
  /** The model directory (a Hugging Face checkpoint) where the servers can read it. */
  modelDir: string;
  /** The name clients send as `model`. */
  servedModelName: string;
  /** Called every few seconds while the server starts (an activity heartbeats here). */
  onProgress?: (message: string) => void;
}

export interface LaunchedModel {
  id: string;
  /** The server's base URL (OpenAI-compatible: /v1/completions, /health, ...). */
  url: string;
  servedModelName: string;
  modelDir: string;
  /** When it started (ISO 8601). */
  startedAt: string;
  /** True when `launch` found it running (started earlier, maybe by another process). */
  adopted: boolean;
  /** Where it runs, for logs: `pid 1234 on host-a`, or a Kubernetes object's name. */
  where: string;
}

export interface ModelLauncher {
  /** Short label for logs, e.g. `local vLLM launcher (/var/forgeline/serving)`. */
  readonly label: string;
  /** Start the model's server, or find the one running under `id`; resolves once it is healthy. */
  launch(req: LaunchRequest): Promise<LaunchedModel>;
  /** Stop the server launched under `id`; a no-op when none runs. */
  stop(id: string): Promise<void>;
  /** The servers running now (records of dead ones are cleaned up). */
  list(): Promise<LaunchedModel[]>;
}
