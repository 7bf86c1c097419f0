/**
 * `npm run demo -- embeddings`: re-embed the shipped corpus (examples/corpus: docs/ and
 * queries.jsonl) into the embedded PGlite store through the real stack (Temporal, the control
 * worker with the store, the pool's worker with the long-lived all-MiniLM-L6-v2 process), swap
 * the alias, print the labelled queries' recall@k and MRR, then answer three sample queries
 * through the alias. A second run carries every unchanged chunk's vector over (0 embedded).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SentenceTransformersEmbedder } from '../adapters/sentence-transformers-embedder';
import { createVectorStore } from '../adapters/vector-store';
import { REPO_ROOT } from '../config/load';
import type { ForgelineConfig } from '../config/schema';
import type { ReembedSpecInput } from '../contracts/specs/reembed-spec';
import { ExitCode } from './errors';
import type { Output } from './output';
import { describeValidation, followReembed, startReembed } from './reembed';
import { LocalStack } from './stack';

export const DEMO_CORPUS = path.join(REPO_ROOT, 'examples', 'corpus');
export const DEMO_INDEX = 'forgeline_docs';
export const DEMO_ALIAS = 'live';

/** Three of the labelled queries (examples/corpus/queries.jsonl): the answer marks the documents labelled relevant. */
export const SAMPLE_QUERIES = ['the linux oom killer terminated the process', 'how many requests per minute can an api token make', 'browser says the https certificate is out of date'];

/** The demo's spec: chunks of at most 256 tokens (what all-MiniLM-L6-v2 reads), a gate the shipped labels pass. */
export function demoReembedSpec(cfg: ForgelineConfig): ReembedSpecInput {
  return {
    corpus: { name: 'forgeline-docs', source: { folder: path.join(DEMO_CORPUS, 'docs') } },
    chunking: { chunkTokens: 256, overlapTokens: 32 },
    embedding: { batchSize: 64 },
    pool: cfg.gpu.pool,
    store: { index: DEMO_INDEX, alias: DEMO_ALIAS },
    validation: { queries: { file: path.join(DEMO_CORPUS, 'queries.jsonl') }, k: 5, minRecallAtK: 0.5, minMrr: 0.4, minOverlapAtK: 0.5 },
    retireAfter: '7d',
    parallelism: { embed: 2, upsert: 4 },
    sliceChunks: 500,
  };
}

export async function demoEmbeddings(cfg: ForgelineConfig, out: Output): Promise<number> {
  const { log } = out;
  const stack = new LocalStack(cfg, log);
  const t0 = Date.now();
  const secs = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
  let code: number = ExitCode.Failure;
  try {
    await stack.up({ workers: true, workerLogLevel: 'error' });
    await stack.workersReady();
    log(`stack ready in ${secs()}: control worker (vector store ${cfg.vectors.store}${cfg.vectors.store === 'pglite' ? ` under ${cfg.vectors.dir}` : ''}), gpu-${cfg.gpu.pool} worker (all-MiniLM-L6-v2, loaded once on its first batch)`);
    const spec = demoReembedSpec(cfg);
    log(`\nre-embedding examples/corpus/docs into ${DEMO_INDEX} (alias ${DEMO_ALIAS}): chunks of 256 tokens, overlap 32, batches of 64`);
    const handle = await startReembed(stack.client, cfg, spec, log, { workflowId: `reembed/forgeline-docs/demo-${new Date().toISOString().replace(/[^0-9]/g, '').slice(0, 14)}` });
    const followed = await followReembed(handle, log);
    code = followed.code;
    const p = followed.progress;
    if (p && code === ExitCode.Ok) {
      const c = p.counts;
      log(`\n${p.documents} documents → ${p.chunks} chunks: ${c.embedded} embedded, ${c.carried} carried over from ${p.previous ?? '(no previous version)'}; alias ${DEMO_ALIAS} → ${p.version} in ${secs()}`);
      const v = describeValidation(p);
      if (v) log(v);
      if (p.previous) log(`${p.previous} is dropped at ${p.retireAt} (retireAfter 7d, a durable timer in ${handle.workflowId})`);
    }
  } catch (err) {
    log(`demo failed: ${(err as Error).message}`);
    return ExitCode.Failure;
  } finally {
    // The embedded store is the control worker's while it runs: stop the stack before reading it here.
    await stack.down();
  }
  if (code !== ExitCode.Ok) return code;
  await answerSampleQueries(cfg, out);
  log(`\ndemo finished in ${secs()}`);
  return ExitCode.Ok;
}

/** Three sample queries through the alias: the best chunk of each of the top three documents. */
export async function answerSampleQueries(cfg: ForgelineConfig, out: Output): Promise<void> {
  const labels = new Map(
    readFileSync(path.join(DEMO_CORPUS, 'queries.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { query: string; relevant: string[] })
      .map((q) => [q.query, new Set(q.relevant)]),
  );
  const store = await createVectorStore(cfg.vectors);
  try {
    const embedder = new SentenceTransformersEmbedder({ python: path.join(cfg.venv, 'bin', 'python') });
    const vectors = await embedder.embed(SAMPLE_QUERIES);
    for (const [i, q] of SAMPLE_QUERIES.entries()) {
      out.log(`\nQ: ${q}`);
      const matches = await store.query(DEMO_INDEX, { alias: DEMO_ALIAS }, vectors.data.subarray(i * vectors.cols, (i + 1) * vectors.cols), { topK: 10 });
      const seen = new Set<string>();
      for (const m of matches) {
        const doc = String(m.metadata.document);
        if (seen.has(doc)) continue;
        seen.add(doc);
        const text = String(m.metadata.text ?? '').replace(/\s+/g, ' ').trim();
        const mark = labels.get(q)?.has(doc) ? '  (labelled relevant)' : '';
        out.log(`  ${m.score.toFixed(3)}  ${doc}${m.metadata.section ? ` § ${String(m.metadata.section)}` : ''}${mark}\n         ${text.length > 160 ? `${text.slice(0, 157)}...` : text}`);
        if (seen.size === 3) break;
      }
    }
  } finally {
    await store.close();
  }
}
