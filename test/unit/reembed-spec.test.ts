import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../../src/cli/program';
import { batchCount, gateFailures, manifestKeys, reembedWorkflowId, versionName } from '../../src/contracts/reembed-spec';
import { ReembedSpecSchema } from '../../src/contracts/specs/reembed-spec';
import { formatProblems, validateSpec } from '../../src/contracts/validate';

const minimal = { corpus: { name: 'docs', source: { folder: '/srv/docs' } }, store: { index: 'docs' } };

function problems(input: unknown): string {
  const v = validateSpec(ReembedSpecSchema, input);
  assert.equal(v.ok, false, 'expected the spec to be refused');
  return formatProblems('reembed spec', (v as { problems: string[] }).problems);
}

describe('reembed spec (src/contracts/specs/reembed-spec.ts)', function () {
  it("fills the defaults: 512 tokens capped at the model's 256, overlap 64, all-MiniLM-L6-v2, pool cpu, alias live, cosine, 7d retirement", function () {
    const spec = ReembedSpecSchema.parse(minimal);
    assert.deepEqual(spec.chunking, { chunkTokens: 256, overlapTokens: 64 });
    assert.deepEqual(spec.embedding, { model: 'sentence-transformers/all-MiniLM-L6-v2', batchSize: 64 });
    assert.equal(spec.pool, 'cpu');
    assert.deepEqual(spec.store, { index: 'docs', alias: 'live', metric: 'cosine' });
    assert.equal(spec.retireAfter, '7d');
    assert.deepEqual(spec.validation, { k: 5, minRecallAtK: 0, minMrr: 0, minOverlapAtK: 0 });
  });

  it('refuses an unknown embedding model, naming the field and the installed one', function () {
    const msg = problems({ ...minimal, embedding: { model: 'BAAI/bge-large-en' } });
    assert.match(msg, /embedding\.model: unknown embedding model: the workers have sentence-transformers\/all-MiniLM-L6-v2/);
  });

  it('refuses chunks over 1024 tokens, an overlap not below the chunk size, and a bad retireAfter', function () {
    assert.match(problems({ ...minimal, chunking: { chunkTokens: 2048 } }), /chunking\.chunkTokens: expected at most 1024 tokens/);
    // Longer chunks than the model reads would be embedded by their first 256 tokens only.
    assert.match(problems({ ...minimal, chunking: { chunkTokens: 512 } }), /chunking\.chunkTokens: sentence-transformers\/all-MiniLM-L6-v2 embeds at most 256 tokens of a chunk .*set chunkTokens to at most 256/);
    assert.equal(ReembedSpecSchema.parse({ ...minimal, chunking: { chunkTokens: 256, overlapTokens: 0 } }).chunking.chunkTokens, 256);
    assert.match(problems({ ...minimal, chunking: { overlapTokens: 128 } }), /chunking\.overlapTokens: expected overlapTokens below half of chunkTokens \(256\)/);
    assert.match(problems({ ...minimal, chunking: { chunkTokens: 128, overlapTokens: 64 } }), /chunking\.overlapTokens: expected overlapTokens below half of chunkTokens/);
    assert.match(problems({ ...minimal, retireAfter: 'a week' }), /retireAfter: expected a duration such as 90s/);
  });

  it('refuses a source that is neither a folder nor an artifact prefix, and index names a store cannot hold', function () {
    assert.match(problems({ ...minimal, corpus: { name: 'docs', source: { url: 'http://x' } } }), /corpus\.source: expected \{ "folder"/);
    assert.match(problems({ ...minimal, store: { index: 'Docs-1' } }), /store\.index: expected a index name/);
    assert.match(problems({ ...minimal, validation: { minRecallAtK: 1.5 } }), /validation\.minRecallAtK: expected a number from 0 to 1/);
    assert.match(problems({ ...minimal, extra: true }), /Unrecognized key/);
  });

  it('names versions and workflow IDs from a time, and manifest keys per slice and batch', function () {
    const at = new Date('2026-12-03T06:10:42.123Z');
    assert.equal(versionName(at), 'v20261203_061042');
    assert.match(versionName(at), /^[a-z][a-z0-9_]{0,47}$/);
    assert.equal(reembedWorkflowId('docs', at), 'reembed/docs/2026120306');
    assert.equal(manifestKeys.vectors('reembed/docs/v1/', 3, 12), 'reembed/docs/v1/vectors/000003/000012.npy');
    assert.equal(batchCount(129, 64), 3);
  });

  it('the gate fails on a count mismatch and each figure under its minimum, one line each', function () {
    const gate = { k: 5, minRecallAtK: 0.8, minMrr: 0.5, minOverlapAtK: 0.6 };
    assert.deepEqual(gateFailures(gate, { expectedCount: 10, count: 10, queries: 4, k: 5, recallAtK: 0.9, mrr: 0.7, overlapAtK: 0.8 }), []);
    const f = gateFailures(gate, { expectedCount: 10, count: 9, queries: 4, k: 5, recallAtK: 0.5, mrr: 0.2, overlapAtK: 0.1 });
    assert.equal(f.length, 4);
    assert.match(f[0]!, /count: the new version holds 9 vectors, the chunk manifest 10/);
    assert.match(f[1]!, /recall@5 0\.500 < validation\.minRecallAtK 0\.8/);
    assert.match(gateFailures(gate, { expectedCount: 1, count: 1, queries: 0, k: 5 })[0]!, /no labelled queries/);
  });
});

describe('forgeline reembed (CLI, before any connection)', function () {
  const sink = () => {
    const s = { text: '', isTTY: false, columns: 100, write: (chunk: string) => ((s.text += chunk), true) };
    return s;
  };
  async function cli(...argv: string[]) {
    const stdout = sink();
    const stderr = sink();
    const code = await runCli(argv, { stdout, stderr });
    return { code, stdout: stdout.text, stderr: stderr.text };
  }
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-reembed-cli-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a bad spec with exit 2, naming each field, and an unknown demo scenario', async function () {
    const file = path.join(dir, 'spec.json');
    writeFileSync(file, JSON.stringify({ ...minimal, embedding: { model: 'text-embedding-3-large' }, chunking: { chunkTokens: 4096 } }));
    const r = await cli('reembed', 'start', file);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /invalid reembed spec: chunking\.chunkTokens, embedding\.model/);
    const missing = await cli('reembed', 'start', path.join(dir, 'nope.json'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.json: file not found/);
    const demo = await cli('demo', 'vectors');
    assert.equal(demo.code, 2);
    assert.match(demo.stderr, /demo vectors: unknown scenario; expected release or embeddings/);
  });

  it('has --help for reembed start and status', async function () {
    const start = await cli('reembed', 'start', '--help');
    assert.equal(start.code, 0);
    assert.match(start.stdout, /<spec>[\s\S]*--no-wait/);
    const status = await cli('reembed', 'status', '--help');
    assert.match(status.stdout, /<id>[\s\S]*--json/);
  });
});
