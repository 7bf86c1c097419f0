import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { ActivityDeps } from '../../activities';
import { createEmbeddingDriftActivities, parseQueryLines } from '../../activities/embeddings-drift';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { LocalTracker } from '../../src/adapters/local-tracker';
import type { EmbeddingDriftCheck, EmbeddingDriftSpec } from '../../src/contracts/embedding-drift';
import { ErrorType } from '../../src/contracts/errors';
import type { TrafficSample } from '../../src/contracts/routing';
import type { Embeddings } from '../../src/drift';
import { EmbeddingDriftSpecSchema, type EmbeddingDriftSpecInput } from '../../src/drift/embedding-drift-spec';
import { formatNpy } from '../../src/drift/npy';
import type { Embedder } from '../../src/ports/embedder';
import type { TrafficRouter } from '../../src/ports/traffic-router';

const MINILM = 'sentence-transformers/all-MiniLM-L6-v2';

/** Stand-in for the model (same name and width): character trigrams hashed into 384 components, L2-normalized. */
class TrigramEmbedder implements Embedder {
  readonly model = MINILM;
  readonly dimensions = 384;
  texts: string[] = [];
  async embed(texts: readonly string[]): Promise<Embeddings> {
    this.texts.push(...texts);
    const d = this.dimensions;
    const data = new Float32Array(texts.length * d);
    texts.forEach((t, r) => {
      const s = `  ${t.toLowerCase()} `;
      for (let i = 0; i + 3 <= s.length; i++) data[r * d + (createHash('md5').update(s.slice(i, i + 3)).digest().readUInt16BE(0) % d)]! += 1;
      const norm = Math.hypot(...data.subarray(r * d, (r + 1) * d)) || 1;
      for (let k = 0; k < d; k++) data[r * d + k]! /= norm;
    });
    return { rows: texts.length, cols: d, data };
  }
}

const ABOUT_PIPELINES = (i: number) => `how do I configure the postgres source connector number ${i} for the pipeline`;
const ABOUT_COOKING = (i: number) => `what is a good recipe ${i} for a chocolate cake with berries and cream`;

describe('embedding drift activities (fake model, local artifact store)', function () {
  this.timeout(60_000);
  let dir: string;
  let artifacts: LocalArtifactStore;
  let embedder: TrigramEmbedder;
  const env = () => new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
  const deps = (over: Partial<ActivityDeps> = {}) => ({ artifacts, tracker: new LocalTracker({ home: dir }), trackerProject: 'forgeline', embedder, ...over }) as unknown as ActivityDeps;
  const spec = (over: Partial<EmbeddingDriftSpecInput>): EmbeddingDriftSpec =>
    EmbeddingDriftSpecSchema.parse({ name: 'queries', fresh: { queries: { file: path.join(dir, 'q.jsonl') } }, reference: { artifact: 'drift/queries-ref.npy' }, checks: [{ method: 'mmd' }], ...over }) as EmbeddingDriftSpec;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-embedding-drift-'));
    artifacts = new LocalArtifactStore(pathToFileURL(path.join(dir, 'store')).href);
    embedder = new TrigramEmbedder();
    const ref = await embedder.embed(Array.from({ length: 60 }, (_, i) => ABOUT_PIPELINES(i)));
    await artifacts.put('drift/queries-ref.npy', formatNpy(ref));
    embedder.texts = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('queries drawn from the reference distribution: no drift; of another topic: a breach line naming method, score and counts', async function () {
    const a = createEmbeddingDriftActivities(deps());
    writeFileSync(path.join(dir, 'q.jsonl'), Array.from({ length: 40 }, (_, i) => JSON.stringify({ query: ABOUT_PIPELINES(i) })).join('\n') + '\n\n');
    const same = (await env().run(a.checkEmbeddingDrift, { spec: spec({}), at: '2026-12-03T06:00:00.000Z' })) as EmbeddingDriftCheck;
    assert.deepEqual([same.inconclusive, same.breaches, same.fresh.samples, same.reference.rows, same.reference.key], [false, [], 40, 60, 'drift/queries-ref.npy']);
    writeFileSync(path.join(dir, 'q.jsonl'), Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: ABOUT_COOKING(i) })).join('\n'));
    const shifted = (await env().run(a.checkEmbeddingDrift, { spec: spec({}), at: '2026-12-03T06:00:00.000Z' })) as EmbeddingDriftCheck;
    assert.equal(shifted.verdicts[0]!.drifted, true);
    assert.match(shifted.breaches[0]!, /^embedding drift: mmd score \S+ > threshold 0\.0150 \(40 fresh vs 60 reference embeddings\)$/);
  });

  it('fewer fresh texts than minSamples: inconclusive, nothing embedded; more than maxSamples: a seeded sample', async function () {
    const a = createEmbeddingDriftActivities(deps());
    writeFileSync(path.join(dir, 'q.jsonl'), Array.from({ length: 5 }, (_, i) => JSON.stringify({ query: ABOUT_PIPELINES(i) })).join('\n'));
    const r = (await env().run(a.checkEmbeddingDrift, { spec: spec({ minSamples: 10 }), at: '2026-12-03T06:00:00.000Z' })) as EmbeddingDriftCheck;
    assert.deepEqual([r.inconclusive, r.verdicts, r.breaches, embedder.texts.length], [true, [], [], 0]);
    writeFileSync(path.join(dir, 'q.jsonl'), Array.from({ length: 50 }, (_, i) => JSON.stringify({ query: ABOUT_PIPELINES(i) })).join('\n'));
    const s = (await env().run(a.checkEmbeddingDrift, { spec: spec({ maxSamples: 20, minSamples: 2 }), at: '2026-12-03T06:00:00.000Z' })) as EmbeddingDriftCheck;
    assert.deepEqual([s.fresh.texts, s.fresh.samples, embedder.texts.length], [50, 20, 20]);
  });

  it("traffic: the gateway's prompts of the window before the check, the user's words of chat prompts", async function () {
    const asked: unknown[] = [];
    const samples = Array.from({ length: 30 }, (_, i) => ({ prompt: `system: be brief\nuser: ${ABOUT_PIPELINES(i)}` }) as TrafficSample);
    const router = { traffic: async (alias: string, w: unknown) => (asked.push({ alias, w }), samples) } as unknown as TrafficRouter;
    const a = createEmbeddingDriftActivities(deps({ router }));
    const at = '2026-12-03T06:00:00.000Z';
    const r = (await env().run(a.checkEmbeddingDrift, { spec: spec({ fresh: { traffic: { alias: 'support-bot', window: '2h' } }, maxSamples: 500 }), at })) as EmbeddingDriftCheck;
    assert.deepEqual(asked, [{ alias: 'support-bot', w: { from: Date.parse(at) - 7_200_000, to: Date.parse(at), limit: 500 } }]);
    assert.equal(embedder.texts[0], ABOUT_PIPELINES(0));
    assert.equal(r.breaches.length, 0);
  });

  it('terminal errors naming the field: a bad queries line, a reference of another width, another model, no vector store', async function () {
    const a = createEmbeddingDriftActivities(deps());
    const terminal = async (p: Promise<unknown>, type: string, re: RegExp) => {
      const err = await p.then(
        () => assert.fail('expected a failure'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.deepEqual([err.type, err.nonRetryable], [type, true]);
      assert.match(err.message, re);
    };
    assert.throws(() => parseQueryLines('{"query": "a"}\n{"q": 1}\n', 'q.jsonl'), /fresh\.queries: q\.jsonl line 2 has no string "query"/);
    writeFileSync(path.join(dir, 'q.jsonl'), '{"query": "fine"}\nnot json\n');
    await terminal(env().run(a.checkEmbeddingDrift, { spec: spec({}), at: '2026-12-03T06:00:00.000Z' }), ErrorType.InvalidSpec, /q\.jsonl line 2 is not JSON/);
    await artifacts.put('drift/narrow.npy', formatNpy({ rows: 3, cols: 2, data: new Float32Array(6) }));
    writeFileSync(path.join(dir, 'q.jsonl'), Array.from({ length: 30 }, (_, i) => JSON.stringify({ query: ABOUT_PIPELINES(i) })).join('\n'));
    await terminal(env().run(a.checkEmbeddingDrift, { spec: spec({ reference: { artifact: 'drift/narrow.npy' } }), at: '2026-12-03T06:00:00.000Z' }), ErrorType.InvalidSpec, /384 components per row|2 components/);
    const other = createEmbeddingDriftActivities(deps({ embedder: Object.assign(new TrigramEmbedder(), { model: 'other/model' }) as unknown as Embedder }));
    await terminal(env().run(other.checkEmbeddingDrift, { spec: spec({}), at: '2026-12-03T06:00:00.000Z' }), ErrorType.InvalidSpec, /model: sentence-transformers\/all-MiniLM-L6-v2 is not served by this worker, which embeds with other\/model/);
    await terminal(env().run(a.checkEmbeddingDrift, { spec: spec({ reference: { store: { index: 'docs', alias: 'live' } } }), at: '2026-12-03T06:00:00.000Z' }), ErrorType.InvalidConfig, /no vector store/);
    await terminal(env().run(a.validateEmbeddingDriftSpec, { name: 'x', fresh: {}, reference: { artifact: 'r.npy' } }), ErrorType.InvalidSpec, /fresh: expected \{ "documents"/);
  });

  it('records the check in the tracker, best-effort', async function () {
    const a = createEmbeddingDriftActivities(deps());
    const result = {
      name: 'docs',
      drifted: true,
      check: { at: '2026-12-03T06:00:00.000Z', reference: { key: 'k', rows: 10, version: 'v1' }, fresh: { source: 's', texts: 5, samples: 5 }, inconclusive: false, verdicts: [{ method: 'mmd', drifted: true, score: 0.2, threshold: 0.015, details: {} }], breaches: ['b'] },
      action: { policy: 'alert' as const, note: 'alerted' },
    };
    const r = (await env().run(a.recordEmbeddingDrift, { workflowId: 'w', result })) as { runUrl?: string };
    assert.ok(r.runUrl);
    const broken = createEmbeddingDriftActivities(deps({ tracker: { kind: 'local', openRun: () => Promise.reject(new Error('tracker down')) } }));
    assert.deepEqual(await env().run(broken.recordEmbeddingDrift, { workflowId: 'w', result }), {});
  });
});
