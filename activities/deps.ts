import type { ArtifactStore } from '../src/ports/artifact-store';
import type { Embedder } from '../src/ports/embedder';
import type { RepoReader } from '../src/ports/repo-reader';
import type { GpuAllocator } from '../src/ports/gpu-allocator';
import type { GpuAdmission } from '../src/ports/gpu-admission';
import type { JobRunner } from '../src/ports/job-runner';
import type { ModelLauncher } from '../src/ports/model-launcher';
import type { ServingBackend } from '../src/ports/serving-backend';
import type { TrafficRouter } from '../src/ports/traffic-router';
import type { Tracker } from '../src/ports/tracker';
import type { VectorStore } from '../src/ports/vector-store';
import type { EmbeddingTokenizer } from '../src/embeddings/tokenizer';
import type { PromptEvalModels } from '../src/evaluation/prompt-eval';
import type { ModelRegistry } from '../src/registry/model-registry';

/** What activities may touch: ports and a few facts about the worker. Built by worker entries. */
export interface ActivityDeps {
  artifacts: ArtifactStore;
  tracker: Tracker;
  registry: ModelRegistry;
  /** Runs recipes (GPU workers; the control worker never sends it a job). */
  jobs: JobRunner;
  /** The GPUs this worker owns (none on pool cpu and on the control worker). */
  gpus: GpuAllocator;
  /** Local scratch space for inputs and recipe outputs (survives retries on the same host). */
  workDir: string;
  /** Tracker project for lifecycle runs. */
  trackerProject: string;
  /** Identity of the worker running the activity (for audit and the stack check). */
  workerIdentity: string;
  /** GPU pool this worker serves, e.g. `cpu`. */
  pool: string;
  /** The inference servers (vLLM) that load candidates' adapters; absent: releases cannot serve. */
  serving?: ServingBackend;
  /** The gateway's routing table and metrics; absent: releases cannot serve. */
  router?: TrafficRouter;
  /** Starts servers of their own for quantized candidates (spec.serving.candidate `quantized`); absent: such releases cannot serve. */
  launcher?: ModelLauncher;
  /**
   * Embeds texts: prompts for the drift monitor (control worker, a process per call), corpus
   * chunks for re-embeds (`gpu-<pool>` workers, a long-lived process); absent: neither can run.
   */
  embedder?: Embedder;
  /** The vector store re-embeds write (control worker only: the embedded PGlite store is one process's). */
  vectors?: VectorStore;
  /**
   * Reads repository files at a commit (the webhook receiver's configured reader,
   * FORGELINE_WEBHOOK_REPOS): prompt releases started by a push read their prompt, release and
   * test set files through it (control worker). Absent: such releases fail saying so.
   */
  repos?: RepoReader;
  /** Prompt evaluation's generation and judge calls, through the gateway (control worker); absent: prompt releases cannot be evaluated. */
  promptModels?: PromptEvalModels;
  /** The embedding model's tokenizer, for token-aware chunking (control worker). */
  tokenizer?: EmbeddingTokenizer;
  /**
   * Where adapters are unpacked for the serving replicas to read (a shared volume in production);
   * each adapter's files stay there until it is unloaded.
   */
  servingDir?: string;
  /**
   * The GPU quota file (FORGELINE_QUOTAS), on the control worker: when set, validated lifecycle
   * specs carry their team's admission plan and GPU stages take leases (activities/admission/plan.ts).
   */
  quotaFile?: string;
  /** The pools' admission workflows (control worker, with a quota file): GPU leases (activities/admission/leases.ts). */
  admission?: GpuAdmission;
  /**
   * Set when recipes log their own W&B runs (FORGELINE_TRACKER=wandb): where and how, and the
   * environment (API key, base URL) the recipe process gets for it, and nothing else of the worker's.
   */
  recipeTracking?: {
    project: string;
    entity?: string;
    mode: 'online' | 'offline';
    /** A directory that outlives attempts: offline runs wait there for `wandb sync`. */
    dir: string;
    env: Record<string, string>;
  };
}
