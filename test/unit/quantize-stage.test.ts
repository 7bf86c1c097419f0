/**
 * The quantize stage's activity (activities/release/quantize.ts) under MockActivityEnvironment:
 * what it asks of the recipe (workers/recipes/quantize.py), what it publishes, what it reports.
 * The workflow step is workflows/release/quantize.ts; the contract src/contracts/recipes/quantize.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { QuantizeResult } from '../../activities/release';
import type { JobRunner, JobSpec } from '../../src/ports/job-runner';
import { QUANTIZE_RESULT } from '../fixtures/recipe-results';
import { stageActivities } from '../helpers/stage-activities';

/** Writes what quantize.py writes (merged/, and quantized/ unless the method is none) and answers like it. */
class QuantizeRunner implements JobRunner {
  readonly jobs: JobSpec[] = [];
  async run(job: JobSpec): Promise<Record<string, unknown>> {
    this.jobs.push(job);
    const dirs = job.input.method === 'none' ? ['merged'] : ['merged', 'quantized'];
    for (const d of dirs) {
      mkdirSync(path.join(job.outDir, d), { recursive: true });
      writeFileSync(path.join(job.outDir, d, 'model.safetensors'), `${d} of ${String(job.input.method)}`);
    }
    return { ...structuredClone(QUANTIZE_RESULT), method: job.input.method };
  }
}

const adapter = { prefix: 'releases/x/adapter/', uri: '', digest: '' };

describe('quantize stage (activity quantizeModel)', function () {
  let cleanup: (() => void) | undefined;
  afterEach(() => cleanup?.());

  async function quantize(quantization: Record<string, unknown>) {
    const jobs = new QuantizeRunner();
    const h = await stageActivities('quantize', jobs, { quantization });
    cleanup = h.cleanup;
    const acts = h.activities();
    // The adapter it merges: a published directory, as the train stage leaves it.
    const adapterDir = path.join(h.dir, 'adapter');
    mkdirSync(adapterDir);
    writeFileSync(path.join(adapterDir, 'adapter_model.safetensors'), 'lora');
    const published = await h.deps.artifacts.publishDirectory(adapterDir, adapter.prefix);
    const result: QuantizeResult = await new MockActivityEnvironment().run(acts.quantizeModel, { ...h.stage, adapter: { ...adapter, digest: published.digest } });
    return { result, job: jobs.jobs[0]!, h };
  }

  it('asks the recipe for the spec\'s method, bits, group size and calibration samples, on one GPU', async function () {
    const { job } = await quantize({ method: 'gptq', bits: 4, groupSize: 64, calibrationSamples: 16 });
    assert.equal(job.recipe, 'quantize');
    assert.equal(job.input.method, 'gptq');
    assert.equal(job.input.bits, 4);
    assert.equal(job.input.group_size, 64);
    assert.equal(job.input.calibration_samples, 16);
    assert.equal(job.input.processes, undefined, 'quantization is not data-parallel');
  });

  it('publishes the merged and the quantized model and reports the recipe\'s sizes and time', async function () {
    const { result, h } = await quantize({ method: 'gptq' });
    assert.equal(result.sizeBeforeBytes, QUANTIZE_RESULT.size_before_bytes);
    assert.equal(result.sizeAfterBytes, QUANTIZE_RESULT.size_after_bytes);
    assert.equal(result.seconds, QUANTIZE_RESULT.seconds);
    assert.match(result.merged.prefix, /^releases\/release-quantize-abc\/merged\/$/);
    assert.ok(result.quantized, 'a quantized model is published');
    assert.ok(await h.deps.artifacts.readManifest(result.quantized.prefix), 'its manifest is written last');
  });

  it('with method none publishes only the merged model', async function () {
    const { result } = await quantize({ method: 'none' });
    assert.equal(result.quantized, undefined);
    assert.ok(result.merged.digest);
  });
});
