/**
 * Failure types that cross the workflow boundary. Activities throw
 * `ApplicationFailure.nonRetryable(message, ErrorType.X)` for terminal faults; workflows and
 * operators match on `failure.type`. Names are part of histories: never rename one.
 */
export const ErrorType = {
  /** A spec or request failed validation; the message names the field and the fix. */
  InvalidSpec: 'InvalidSpec',
  /** Forgeline configuration is missing or wrong (bucket absent, credentials refused). */
  InvalidConfig: 'InvalidConfig',
  /** An artifact expected to exist is missing. */
  ArtifactNotFound: 'ArtifactNotFound',
  /** Stored bytes do not match the expected sha256. */
  ArtifactIntegrity: 'ArtifactIntegrity',
  /** A published, immutable version would be overwritten with different content. */
  ArtifactConflict: 'ArtifactConflict',
  /**
   * A registry write lost a race or failed its precondition: the alias moved meanwhile, or the
   * version is registered for other content. The message names the model, the alias or version,
   * and who holds it; nothing was changed.
   */
  RegistryConflict: 'RegistryConflict',
  /** A recipe (Python job) exited with an error that retrying cannot fix. */
  RecipeFailed: 'RecipeFailed',
  /**
   * A recipe's result or event does not match its contract (src/contracts/recipes): a field is
   * missing, renamed or of the wrong type. A bug in the recipe or the activity; the message names
   * the recipe and each field.
   */
  RecipeContract: 'RecipeContract',
  /** An evaluation gate failed: the release is rejected. */
  GateFailed: 'GateFailed',
  /** The stack check could not reach a worker of the pool, or its probe failed. */
  StackCheckFailed: 'StackCheckFailed',
  /** An operator rejected the release, or nobody decided before the approval timeout. */
  Rejected: 'Rejected',
  /** An operator aborted the lifecycle; running activities were cancelled. */
  Aborted: 'Aborted',
  /** An activity reached a worker that does not serve it (a GPU stage on the control queue, say). */
  WrongTaskQueue: 'WrongTaskQueue',
  /**
   * A serving replica refused a request that retrying cannot fix: an adapter path it cannot read or
   * that holds no LoRA adapter, an adapter name already taken by other weights, a base model it
   * does not serve. The message names the replica, the adapter and the fix.
   */
  ServingRejected: 'ServingRejected',
  /** The canary failed its analysis (or an operator rolled it back): traffic, adapters and aliases were restored. */
  RolledBack: 'RolledBack',
  /** A lifecycle needs serving (vLLM, the gateway) that this worker was not configured with. */
  ServingNotConfigured: 'ServingNotConfigured',
  /**
   * A vector store refused a write or read that retrying cannot fix: vectors of the wrong width for
   * the index version, a version or alias that does not exist, a name the store cannot hold. The
   * message names the store, the index and version, and the fix.
   */
  VectorStoreRejected: 'VectorStoreRejected',
  /** An index alias moved meanwhile (compare-and-swap lost): nothing was changed. */
  AliasConflict: 'AliasConflict',
  /** A retrieval-quality or count check of a new index version failed: the alias was not moved. */
  ValidationFailed: 'ValidationFailed',
  /** A judge model (LLM-judged metrics) gave no valid answer within its attempts: not a score of 0. */
  JudgeFailed: 'JudgeFailed',
  /**
   * Retryable, never in a `nonRetryableErrorTypes` list: the GPU worker running the attempt got its
   * machine's preemption notice (spot), asked the recipe to checkpoint and stopped. The retry runs
   * on another worker and resumes from that checkpoint; the message names the notice.
   */
  WorkerPreempted: 'WorkerPreempted',
} as const;

export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];
