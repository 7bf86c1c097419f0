import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ActivityDeps } from '../../activities';
import { createEmbeddingDriftActivities } from '../../activities/embeddings-drift';
import { LocalGpuAllocator } from '../../src/adapters/gpu-allocator';
import { LocalTracker } from '../../src/adapters/local-tracker';
import { driftReembedWorkflowId, EmbeddingDriftOutcome, storeReferenceKey } from '../../src/contracts/embedding-drift';
import { ErrorType } from '../../src/contracts/errors';
import { ForgelineLifecycle, ForgelineOutcome } from '../../src/contracts/search-attributes';
import type { EmbeddingDriftSpecInput } from '../../src/drift/embedding-drift-spec';
import { loadMiniLmTokenizer } from '../../src/embeddings/tokenizer';
import type { JobRunner } from '../../src/ports/job-runner';
import { ModelRegistry } from '../../src/registry/model-registry';
import { embeddingDriftWorkflow, reembedCorpusWorkflow } from '../../workflows';
import { splitShippedCorpus, writeShiftedDocs } from '../fixtures/embedding-drift';
import { closeSharedEmbedder, reembedWorld, sharedEmbedder } from '../fixtures/reembed';
import { failureOfType } from '../helpers/failures';
import { venvPython } from '../helpers/python';
import { createPrivateTimeSkippingEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

/** The embedding drift activities on a re-embed world's stores, with the real (shared) embedder. */
function driftActivities(w: Awaited<ReturnType<typeof reembedWorld>>, over: Partial<ActivityDeps> = {}) {
  return createEmbeddingDriftActivities({
    artifacts: w.artifacts,
    tracker: new LocalTracker({ home: w.dir }),
    registry: new ModelRegistry(w.artifacts),
    jobs: {} as JobRunner,
    gpus: new LocalGpuAllocator([]),
    workDir: path.join(w.dir, 'work'),
    trackerProject: 'forgeline',
    workerIdentity: 'test',
    pool: 'cpu',
    vectors: w.vectors,
    embedder: sharedEmbedder(),
    ...over,
  });
}

/**
 * The embedding drift check on the time-skipping Temporal test server with real activities: the
 * shipped corpus (a seeded 70/30 split) re-embedded into PGlite by the real reembedCorpusWorkflow
 * with the real all-MiniLM-L6-v2, then checked against the held-out 30 % of the same product's
 * documents (no drift) and against documents on other topics (drift).
 */
describe('embeddingDriftWorkflow (time-skipping test server, real activities, PGlite, all-MiniLM-L6-v2, the shipped corpus)', function () {
  this.timeout(600_000);
  // A server of this file's own: after the double breach the shared test server stopped
  // skipping time for later files (see createPrivateTimeSkippingEnv).
  let env: TestWorkflowEnvironment;
  before(async function () {
    this.timeout(60_000);
    env = await createPrivateTimeSkippingEnv();
  });
  after(closeSharedEmbedder);
  after(async () => env?.teardown());

  it('no drift on held-out documents of the corpus; drift on other topics; policy reembed starts exactly one re-embed on a double breach, which then swaps the alias', async function () {
    const { taskQueue, workflowId } = isolate(this, 'embedding-drift');
    const pool = uniquePool();
    const w = await reembedWorld('embedding-drift');
    try {
      const sameTopic = path.join(w.dir, 'incoming-same');
      const shifted = path.join(w.dir, 'incoming-shifted');
      mkdirSync(w.corpus, { recursive: true });
      const split = splitShippedCorpus(w.corpus, sameTopic);
      assert.ok(split.index > 100 && split.fresh > 40, JSON.stringify(split));
      writeShiftedDocs(shifted);
      const drift = driftActivities(w, { tokenizer: loadMiniLmTokenizer(path.dirname(path.dirname(venvPython()))) });
      const reembedSpec = w.spec(pool, { chunking: { chunkTokens: 128, overlapTokens: 16 }, embedding: { batchSize: 32 }, validation: { k: 5 }, sliceChunks: 500 });
      const check = (name: string, folder: string, over: Partial<EmbeddingDriftSpecInput> = {}): EmbeddingDriftSpecInput => ({
        name,
        fresh: { documents: { source: { folder } } },
        reference: { store: { index: 'docs', alias: 'live' } },
        minSamples: 20,
        // Thresholds from the spec: MMD at Evidently's 0.015; the domain classifier at ROC AUC 0.7 (its bootstrapped
        // threshold, about 0.55 here, flags the held-out documents: 0.57, their components differ a little).
        checks: [{ method: 'mmd' }, { method: 'model', bootstrap: false, threshold: 0.7 }],
        ...over,
      });

      await withWorkers(env, { taskQueue, pool, control: { ...w.control, ...drift }, gpu: w.gpu }, async () => {
        const built = await env.client.workflow.execute(reembedCorpusWorkflow, { taskQueue, workflowId: `${workflowId}-build`, args: [{ ...reembedSpec, store: { index: 'docs', version: 'v1' } }] });
        assert.equal(built.version, 'v1');
        assert.ok(built.chunks > 200, `${built.chunks} chunks`);

        // The rest of the product's documents: the same distribution, no drift.
        const same = await env.client.workflow.start(embeddingDriftWorkflow, { taskQueue, workflowId: `${workflowId}-same`, args: [check('docs-same', sameTopic)] });
        const r1 = await same.result();
        assert.equal(r1.check.inconclusive, false);
        assert.equal(r1.check.reference.version, 'v1');
        assert.equal(r1.check.reference.rows, Math.min(built.chunks, 2000));
        assert.ok(r1.check.fresh.samples >= 40, `${r1.check.fresh.samples} fresh chunks`);
        assert.match(r1.check.fresh.source, /chunked 128\/16 tokens/, 'fresh documents are chunked as the reference version was');
        assert.deepEqual(
          r1.check.verdicts.map((v) => [v.method, v.drifted]),
          [
            ['mmd', false],
            ['model', false],
          ],
          JSON.stringify(r1.check.verdicts.map(({ method, score, threshold }) => ({ method, score, threshold }))),
        );
        assert.equal(r1.drifted, false);
        assert.equal(r1.action, undefined);
        const sa = (await same.describe()).typedSearchAttributes;
        assert.equal(sa.get(ForgelineLifecycle), 'embedding-drift');
        assert.equal(sa.get(ForgelineOutcome), EmbeddingDriftOutcome.NoDrift);
        // The reference sample is cached per version (the second check reads it instead of the store).
        await w.artifacts.getBytes(storeReferenceKey('docs', 'v1', 'sentence-transformers/all-MiniLM-L6-v2', 2000));

        // Other topics: drift. Policy reembed, twice: one re-embed.
        const reembedId = driftReembedWorkflowId('docs', 'v1');
        const breach = (n: number) =>
          env.client.workflow.execute(embeddingDriftWorkflow, { taskQueue, workflowId: `${workflowId}-shifted-${n}`, args: [check('docs-shifted', shifted, { onBreach: { policy: 'reembed', reembed: reembedSpec } })] });
        const r2 = await breach(1);
        assert.equal(r2.drifted, true, JSON.stringify(r2.check.verdicts.map(({ method, score, threshold }) => ({ method, score, threshold }))));
        assert.ok(r2.check.verdicts.every((v) => v.drifted), 'both methods see other topics as drift');
        assert.match(r2.check.breaches[0]!, /^embedding drift: mmd score \S+ > threshold/);
        assert.deepEqual(r2.action && { policy: r2.action.policy, workflowId: r2.action.workflowId, started: r2.action.started }, { policy: 'reembed', workflowId: reembedId, started: true });
        const runId = (await env.client.workflow.getHandle(reembedId).describe()).runId;
        const r3 = await breach(2);
        assert.equal(r3.drifted, true);
        assert.equal(r3.action?.started, false, 'the second breach against v1 finds the re-embed already started');
        assert.match(r3.action?.note ?? '', /already started/);
        const reembed = env.client.workflow.getHandle(reembedId);
        assert.equal((await reembed.describe()).runId, runId, 'still the one re-embed run');
        const result = (await reembed.result()) as { version: string; previous: string | null };
        assert.equal(result.previous, 'v1');
        assert.equal((await w.vectors.getAlias('docs', 'live'))?.version, result.version, 'the re-embed swapped the alias');
      });
    } finally {
      await w.cleanup();
    }
  });

  it('bad specs fail at once, non-retryable, naming the field (policy reembed on another index, an unset alias)', async function () {
    const { taskQueue, workflowId } = isolate(this, 'embedding-drift');
    const w = await reembedWorld('embedding-drift-bad');
    try {
      const drift = driftActivities(w);
      await withWorkers(env, { taskQueue, control: drift }, async () => {
        const fail = async (id: string, spec: unknown, type: string) => {
          const err = await env.client.workflow.execute(embeddingDriftWorkflow, { taskQueue, workflowId: `${workflowId}-${id}`, args: [spec] }).then(
            () => assert.fail('expected a failure'),
            (e: unknown) => e,
          );
          assert.ok(err instanceof WorkflowFailedError, String(err));
          const f = failureOfType(err, type);
          assert.equal(f.nonRetryable, true);
          return f.message;
        };
        const base = { name: 'docs', fresh: { queries: { file: '/nonexistent.jsonl' } }, reference: { store: { index: 'docs', alias: 'live' } } };
        const m1 = await fail('other-index', { ...base, onBreach: { policy: 'reembed', reembed: w.spec('cpu', { store: { index: 'other', alias: 'live' } }) } }, ErrorType.InvalidSpec);
        assert.match(m1, /onBreach\.reembed\.store: the re-embed writes other\/live, the check reads docs\/live/);
        const m2 = await fail('no-alias', base, ErrorType.InvalidSpec);
        assert.match(m2, /reference\.store: alias docs\/live is not set/);
      });
    } finally {
      await w.cleanup();
    }
  });
});
