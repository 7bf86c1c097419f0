import type { MetricCounter, MetricGauge, MetricHistogram, MetricMeter } from '@temporalio/common';
import { RecipeCrashedError, RecipePreemptedError } from '../adapters/local-job-runner';
import type { Embedder } from '../ports/embedder';
import type { JobRunner, JobSpec } from '../ports/job-runner';

/** How a recipe run ended, the `outcome` label of forgeline_recipe_runs. */
export type RecipeOutcome = 'succeeded' | 'failed' | 'crashed' | 'preempted' | 'cancelled';

/** `preempted`: the worker is stopping; `cancelled`: the activity was; `crashed`: retryable; else `failed` (terminal). */
export function recipeOutcome(err: unknown, signal?: AbortSignal): RecipeOutcome {
  if (err instanceof RecipePreemptedError) return 'preempted';
  if (signal?.aborted) return 'cancelled';
  if (err instanceof RecipeCrashedError) return 'crashed';
  return 'failed';
}

/**
 * Forgeline's own worker metrics. They are made on the Temporal runtime's meter, so they come out
 * of the same Prometheus endpoint as the SDK's `temporal_*` metrics (one scrape per worker), with
 * the same prefix handling: the runtime prefixes only its own metrics.
 */
export class WorkerMetrics {
  private readonly recipeRuns: MetricCounter;
  private readonly recipeSeconds: MetricHistogram;
  private readonly embeddingBatches: MetricCounter;
  private readonly embeddedTexts: MetricCounter;
  private readonly gpusTotal: MetricGauge;
  private readonly gpusInUse: MetricGauge;
  private readonly gpuWaiters: MetricGauge;

  constructor(meter: MetricMeter) {
    this.recipeRuns = meter.createCounter('forgeline_recipe_runs', 'runs', 'Recipe runs (training, evaluation, quantization, embedding jobs) that ended, by recipe and outcome.');
    this.recipeSeconds = meter.createHistogram('forgeline_recipe_duration_seconds', 'float', 's', 'Wall time of recipe runs, by recipe and outcome.');
    this.embeddingBatches = meter.createCounter('forgeline_embedding_batches', 'batches', 'Embedding batches the worker ran, by model and outcome.');
    this.embeddedTexts = meter.createCounter('forgeline_embedded_texts', 'texts', 'Texts embedded, by model.');
    this.gpusTotal = meter.createGauge('forgeline_gpus', 'int', 'gpus', 'GPUs this worker owns (0 on pool cpu and on the control worker).');
    this.gpusInUse = meter.createGauge('forgeline_gpus_in_use', 'int', 'gpus', 'GPUs a running task holds right now.');
    this.gpuWaiters = meter.createGauge('forgeline_gpu_waiters', 'int', 'jobs', 'Jobs waiting for a GPU right now.');
  }

  recordRecipe(recipe: string, outcome: RecipeOutcome, seconds: number): void {
    this.recipeRuns.add(1, { recipe, outcome });
    this.recipeSeconds.record(seconds, { recipe, outcome });
  }

  recordEmbedding(model: string, texts: number, ok: boolean): void {
    this.embeddingBatches.add(1, { model, outcome: ok ? 'succeeded' : 'failed' });
    if (ok) this.embeddedTexts.add(texts, { model });
  }

  setGpus(gpus: { total: number; freeCount: number; waiting: number }): void {
    this.gpusTotal.set(gpus.total);
    this.gpusInUse.set(gpus.total - gpus.freeCount);
    this.gpuWaiters.set(gpus.waiting);
  }

  /** Sample the allocator now and every `everyMs` until the returned function is called. */
  watchGpus(gpus: { total: number; freeCount: number; waiting: number }, everyMs = 5000): () => void {
    this.setGpus(gpus);
    const timer = setInterval(() => this.setGpus(gpus), everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}

/** `runner` whose runs are counted by recipe and outcome; everything else (preempt()) passes through. */
export function instrumentJobRunner<R extends JobRunner>(runner: R, metrics: WorkerMetrics): R {
  const run = async (job: JobSpec): Promise<Record<string, unknown>> => {
    const started = performance.now();
    try {
      const out = await runner.run(job);
      metrics.recordRecipe(job.recipe, 'succeeded', (performance.now() - started) / 1000);
      return out;
    } catch (err) {
      metrics.recordRecipe(job.recipe, recipeOutcome(err, job.signal), (performance.now() - started) / 1000);
      throw err;
    }
  };
  return new Proxy(runner, { get: (target, prop, receiver) => (prop === 'run' ? run : Reflect.get(target, prop, receiver) as unknown) });
}

/** `embedder` whose batches are counted; model and dimensions pass through. */
export function instrumentEmbedder<E extends Embedder>(embedder: E, metrics: WorkerMetrics): E {
  const embed: Embedder['embed'] = async (texts, options) => {
    try {
      const out = await embedder.embed(texts, options);
      metrics.recordEmbedding(embedder.model, texts.length, true);
      return out;
    } catch (err) {
      metrics.recordEmbedding(embedder.model, texts.length, false);
      throw err;
    }
  };
  return new Proxy(embedder, { get: (target, prop, receiver) => (prop === 'embed' ? embed : Reflect.get(target, prop, receiver) as unknown) });
}
