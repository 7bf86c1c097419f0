import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ErrorType } from '../../src/contracts/errors';
import { ReembedOutcome, ReembedStage, versionName, type ReembedProgress } from '../../src/contracts/reembed-spec';
import { ForgelineLifecycle, ForgelineOutcome, ForgelineStage } from '../../src/contracts/search-attributes';
import type { Embedder } from '../../src/ports/embedder';
import { reembedCorpusWorkflow, reembedProgressQuery } from '../../workflows';
import { closeSharedEmbedder, CORPUS, QUERIES, reembedWorld, sharedEmbedder, writeCorpus } from '../fixtures/reembed';
import { failureOfType } from '../helpers/failures';
import { getTimeSkippingEnv, isolate } from '../helpers/temporal';
import { uniquePool, withWorkers } from '../helpers/workers';

async function until(handle: WorkflowHandle, pred: (p: ReembedProgress) => boolean): Promise<ReembedProgress> {
  for (;;) {
    const p = await handle.query(reembedProgressQuery).catch(() => undefined);
    if (p && pred(p)) return p;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The embedder with a count of the texts it embedded (what a re-run must not redo). */
function counting(inner: Embedder, onBatch?: (n: number) => void): Embedder & { texts: number; calls: number } {
  const c = {
    model: inner.model,
    dimensions: inner.dimensions,
    texts: 0,
    calls: 0,
    async embed(texts: readonly string[], options?: Parameters<Embedder['embed']>[1]) {
      onBatch?.(c.calls);
      const e = await inner.embed(texts, options);
      c.texts += texts.length;
      c.calls++;
      return e;
    },
  };
  return c;
}

async function failure(handle: WorkflowHandle, type: string): Promise<string> {
  const err = await handle.result().then(
    () => assert.fail('expected the re-embed to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError, String(err));
  const f = failureOfType(err, type);
  assert.equal(f.nonRetryable || f.type === ErrorType.ValidationFailed, true, `${type} is terminal`);
  return f.message;
}

/**
 * The re-embed lifecycle on the time-skipping Temporal test server with real activities: a
 * corpus in a folder, the real tokenizer and chunker, the real all-MiniLM-L6-v2 in a long-lived
 * process, PGlite with pgvector as the store.
 */
describe('reembedCorpusWorkflow (time-skipping test server, real activities, PGlite, all-MiniLM-L6-v2)', function () {
  this.timeout(240_000);
  after(closeSharedEmbedder);

  it('embeds a corpus into a new version, gates it, swaps the alias; a re-run carries unchanged chunks over and embeds only a changed document; the previous version is dropped after retireAfter', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this, 'reembed');
    const pool = uniquePool();
    const embedder = counting(sharedEmbedder());
    const w = await reembedWorld('reembed-full', { embedder });
    try {
      writeCorpus(w.corpus);
      await withWorkers(env, { taskQueue, pool, control: w.control, gpu: w.gpu }, async () => {
        const first = await env.client.workflow.start(reembedCorpusWorkflow, { taskQueue, workflowId: `${workflowId}-1`, args: [w.spec(pool, { store: { index: 'docs', version: 'v1' } })] });
        const r1 = await first.result();
        assert.equal(r1.version, 'v1');
        assert.equal(r1.previous, null);
        assert.equal(r1.documents, 6);
        assert.ok(r1.chunks >= 6, `${r1.chunks} chunks`);
        assert.equal(r1.counts.embedded, r1.chunks);
        assert.equal(embedder.texts, r1.chunks + QUERIES.length, 'every chunk once, and the labelled queries');
        assert.equal(r1.validation.passed, true);
        assert.equal(r1.validation.count, r1.chunks);
        assert.equal(r1.validation.recallAtK, 1, 'each labelled query finds its document first');
        assert.equal(r1.validation.mrr, 1);
        assert.equal((await w.vectors.getAlias('docs', 'live'))?.version, 'v1');
        const desc = await first.describe();
        assert.equal(desc.typedSearchAttributes.get(ForgelineLifecycle), 'reembed');
        assert.equal(desc.typedSearchAttributes.get(ForgelineStage), ReembedStage.Done);
        assert.equal(desc.typedSearchAttributes.get(ForgelineOutcome), ReembedOutcome.Succeeded);
        const p1 = await first.query(reembedProgressQuery);
        assert.deepEqual(p1.slices, { done: Math.ceil(r1.chunks / 8), total: Math.ceil(r1.chunks / 8) });
        assert.equal(p1.batches.done, p1.batches.total);

        // Unchanged corpus: nothing embedded, every vector carried over from v1.
        embedder.texts = 0;
        const second = await env.client.workflow.start(reembedCorpusWorkflow, { taskQueue, workflowId: `${workflowId}-2`, args: [w.spec(pool, { store: { index: 'docs', version: 'v2' }, retireAfter: '3d', validation: { k: 1, minRecallAtK: 0.8, minOverlapAtK: 1 } })] });
        const retiring = await until(second, (p) => p.stage === ReembedStage.Retire);
        assert.equal(retiring.counts.embedded, 0);
        assert.equal(retiring.counts.carried, r1.chunks);
        assert.equal(retiring.validation?.overlapAtK, 1);
        assert.equal((await w.vectors.getAlias('docs', 'live'))?.version, 'v2');
        assert.deepEqual((await w.vectors.listVersions('docs')).map((v) => v.version), ['v1', 'v2'], 'v1 kept until retireAfter');
        const r2 = await second.result(); // the test server skips the 3 days
        assert.equal(r2.retired, 'v1');
        assert.deepEqual((await w.vectors.listVersions('docs')).map((v) => v.version), ['v2']);
        assert.equal(embedder.texts, QUERIES.length, 'only the labelled queries were embedded');

        // One document changed: only its chunks are embedded.
        writeFileSync(path.join(w.corpus, 'coffee.txt'), `${CORPUS['coffee.txt']} Pull the shot into a warm cup.`);
        embedder.texts = 0;
        const r3 = await env.client.workflow.execute(reembedCorpusWorkflow, { taskQueue, workflowId: `${workflowId}-3`, args: [w.spec(pool, { store: { index: 'docs', version: 'v3' }, retireAfter: '1h' })] });
        assert.ok(r3.counts.embedded >= 1 && r3.counts.embedded <= 2, `${r3.counts.embedded} chunks of coffee.txt embedded`);
        assert.equal(r3.counts.carried, r3.chunks - r3.counts.embedded);
        assert.equal(embedder.texts, r3.counts.embedded + QUERIES.length);
        assert.equal((await w.vectors.getAlias('docs', 'live'))?.version, 'v3');
        assert.equal(sharedEmbedder().starts, 1, 'one embedding process served every batch of the three runs');
      });
    } finally {
      await w.cleanup();
    }
  });

  it('resumes after an embedding attempt dies mid-slice without redoing the batches it finished', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this, 'reembed');
    const pool = uniquePool();
    let crashed = false;
    // The worker dies in its third batch of the first slice: the attempt fails (as when the
    // worker is lost and its heartbeat times out), the retry resumes on another attempt.
    const embedder = counting(sharedEmbedder(), (calls) => {
      if (calls === 2 && !crashed) {
        crashed = true;
        throw new Error(`worker lost during attempt ${Context.current().info.attempt}`);
      }
    });
    const w = await reembedWorld('reembed-crash', { embedder });
    try {
      writeCorpus(w.corpus, CORPUS, []);
      await withWorkers(env, { taskQueue, pool, control: w.control, gpu: w.gpu }, async () => {
        const handle = await env.client.workflow.start(reembedCorpusWorkflow, {
          taskQueue,
          workflowId,
          args: [w.spec(pool, { sliceChunks: 100, embedding: { batchSize: 2 }, validation: { k: 1 } })],
        });
        const r = await handle.result();
        // The default version name comes from the run's start: the same in the run, in the store and on replay (the query).
        const { startTime } = await handle.describe();
        assert.equal(r.version, versionName(startTime));
        assert.equal((await w.vectors.getAlias('docs', 'live'))?.version, r.version);
        assert.equal((await handle.query(reembedProgressQuery)).version, r.version);
        assert.ok(crashed);
        assert.equal(r.counts.embedded, r.chunks - 4, 'the retry embedded what the dead attempt had not');
        assert.equal(r.counts.batchesSkipped, 2, 'the two finished batches were not run again');
        assert.equal(embedder.texts, r.chunks, 'every chunk embedded exactly once');
        assert.equal(r.validation.count, r.chunks);
      });
    } finally {
      await w.cleanup();
    }
  });

  it('a failed validation gate leaves the alias on the previous version and says why', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this, 'reembed');
    const pool = uniquePool();
    const w = await reembedWorld('reembed-gate');
    try {
      writeCorpus(w.corpus);
      await withWorkers(env, { taskQueue, pool, control: w.control, gpu: w.gpu }, async () => {
        await env.client.workflow.execute(reembedCorpusWorkflow, { taskQueue, workflowId: `${workflowId}-1`, args: [w.spec(pool, { store: { index: 'docs', version: 'v1' } })] });
        // Labels that contradict the corpus: the bread question "belongs" to the rockets document.
        writeCorpus(w.corpus, {}, [{ query: 'how long should the dough rise before baking the loaf', relevant: ['rockets.md'] }]);
        const handle = await env.client.workflow.start(reembedCorpusWorkflow, { taskQueue, workflowId: `${workflowId}-2`, args: [w.spec(pool, { store: { index: 'docs', version: 'v2' } })] });
        const message = await failure(handle, ErrorType.ValidationFailed);
        assert.match(message, /validation of docs\/v2 failed, alias live left on v1: recall@1 0\.000 < validation\.minRecallAtK 0\.8/);
        assert.equal((await w.vectors.getAlias('docs', 'live'))?.version, 'v1');
        const p = await handle.query(reembedProgressQuery);
        assert.equal(p.outcome, ReembedOutcome.Failed);
        assert.equal(p.validation?.passed, false);
      });
    } finally {
      await w.cleanup();
    }
  });

  it('bad input fails at once, non-retryable, naming the problem, and loses nothing already written: unknown model, empty corpus, a non-UTF-8 file, a dimension mismatch', async function () {
    const env = await getTimeSkippingEnv();
    const { taskQueue, workflowId } = isolate(this, 'reembed');
    const pool = uniquePool();
    const w = await reembedWorld('reembed-bad');
    try {
      writeCorpus(w.corpus);
      await withWorkers(env, { taskQueue, pool, control: w.control, gpu: w.gpu }, async () => {
        const run = (n: string, spec: unknown) => env.client.workflow.start(reembedCorpusWorkflow, { taskQueue, workflowId: `${workflowId}-${n}`, args: [spec] });
        await (await run('ok', w.spec(pool, { store: { index: 'docs', version: 'v1' } }))).result();
        const before = await w.vectors.count('docs', 'v1');
        const untouched = async () => {
          assert.equal((await w.vectors.getAlias('docs', 'live'))?.version, 'v1');
          assert.equal(await w.vectors.count('docs', 'v1'), before);
        };

        assert.match(await failure(await run('model', w.spec(pool, { embedding: { model: 'BAAI/bge-large-en-v1.5' as never } })), ErrorType.InvalidSpec), /embedding\.model: unknown embedding model/);
        await untouched();

        rmSync(w.corpus, { recursive: true });
        writeCorpus(w.corpus, {}, []);
        assert.match(await failure(await run('empty', w.spec(pool, { store: { index: 'docs', version: 'v2' } })), ErrorType.InvalidSpec), /no supported documents/);
        await untouched();

        writeCorpus(w.corpus, { 'good.txt': 'Plain text.', 'latin1.txt': Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6e, 0x6f, 0x69, 0x72]) }, []);
        assert.match(await failure(await run('utf8', w.spec(pool, { store: { index: 'docs', version: 'v2' } })), ErrorType.InvalidSpec), /latin1\.txt.*UTF-8/);
        await untouched();
        assert.deepEqual((await w.vectors.listVersions('docs')).map((v) => v.version), ['v1'], 'no version was created for a corpus that could not be read');

        rmSync(w.corpus, { recursive: true });
        writeCorpus(w.corpus, CORPUS, []);
        await w.vectors.createVersion('docs', 'v_small', { dimensions: 8, metric: 'cosine' });
        await w.vectors.upsert('docs', 'v_small', [{ id: 'keep', values: [1, 0, 0, 0, 0, 0, 0, 0] }]);
        const msg = await failure(await run('dims', w.spec(pool, { store: { index: 'docs', version: 'v_small' } })), ErrorType.VectorStoreRejected);
        assert.match(msg, /docs version v_small exists with 8 dimensions \(cosine\), but sentence-transformers\/all-MiniLM-L6-v2 makes 384/);
        assert.equal(await w.vectors.count('docs', 'v_small'), 1, 'the existing version keeps its records');
        await untouched();
      });
    } finally {
      await w.cleanup();
    }
  });
});
