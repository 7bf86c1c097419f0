/**
 * Retrieval quality of the shipped corpus with the real model: loads examples/corpus/docs, chunks
 * it with our chunker, embeds chunks and the labelled queries with all-MiniLM-L6-v2 (the venv's
 * sentence-transformers, as the pipeline does), ranks documents by their best chunk (cosine) and
 * prints recall@k and MRR, overall and per query kind, plus the queries that miss.
 *
 *   npx tsx scripts/evaluate-corpus.ts [--chunk-tokens 256] [--overlap 32] [--k 5]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SentenceTransformersEmbedder } from '../src/adapters/sentence-transformers-embedder';
import { runMain } from '../src/cli/run-main';
import { loadConfig, REPO_ROOT } from '../src/config/load';
import { chunkDocument, validateChunking } from '../src/embeddings/chunker';
import { loadDocuments } from '../src/embeddings/documents';
import { meanMrr, meanRecallAtK, recallAtK } from '../src/embeddings/retrieval-metrics';
import { loadMiniLmTokenizer } from '../src/embeddings/tokenizer';

runMain(async () => {
  const { values } = parseArgs({ options: { 'chunk-tokens': { type: 'string', default: '256' }, overlap: { type: 'string', default: '32' }, k: { type: 'string', default: '5' } } });
  const cfg = loadConfig();
  const root = path.join(REPO_ROOT, 'examples', 'corpus');
  const tokenizer = loadMiniLmTokenizer(cfg.venv);
  const options = { tokenizer, chunkTokens: Number(values['chunk-tokens']), overlapTokens: Number(values.overlap) };
  for (const w of validateChunking(options).warnings) console.warn(`warning: ${w}`);
  const k = Number(values.k);
  const { documents } = await loadDocuments({ folder: path.join(root, 'docs') });
  const chunks = documents.flatMap((d) => chunkDocument(d, options));
  const queries = readFileSync(path.join(root, 'queries.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { query: string; relevant: string[] });
  const embedder = new SentenceTransformersEmbedder({ python: path.join(cfg.venv, 'bin', 'python') });
  const c = await embedder.embed(chunks.map((x) => x.text));
  const q = await embedder.embed(queries.map((x) => x.query));
  const ranked = queries.map((_, i) => {
    const qv = q.data.subarray(i * q.cols, (i + 1) * q.cols);
    const scored = chunks.map((chunk, j) => {
      let dot = 0;
      for (let d = 0; d < c.cols; d++) dot += qv[d]! * c.data[j * c.cols + d]!;
      return { doc: chunk.documentId, dot };
    });
    scored.sort((a, b) => b.dot - a.dot);
    return scored.map((s) => s.doc);
  });
  const relevant = queries.map((x) => x.relevant);
  const kinds = { setting: queries.map((x) => x.relevant.length === 1), error: queries.map((x) => x.relevant.length > 1) };
  const subset = (mask: boolean[]) => ({ results: ranked.filter((_, i) => mask[i]), relevant: relevant.filter((_, i) => mask[i]) });
  const report = {
    documents: documents.length,
    chunks: chunks.length,
    queries: queries.length,
    chunking: { chunkTokens: options.chunkTokens, overlapTokens: options.overlapTokens },
    [`recallAt${k}`]: meanRecallAtK(ranked, relevant, k),
    mrr: meanMrr(ranked, relevant),
    byKind: Object.fromEntries(Object.entries(kinds).map(([name, mask]) => {
      const s = subset(mask);
      return [name, { queries: s.results.length, [`recallAt${k}`]: meanRecallAtK(s.results, s.relevant, k), mrr: meanMrr(s.results, s.relevant) }];
    })),
    misses: queries.flatMap((x, i) => (recallAtK(ranked[i]!, relevant[i]!, k) < 1 ? [{ query: x.query, relevant: x.relevant, top: [...new Set(ranked[i])].slice(0, 3) }] : [])),
  };
  console.log(JSON.stringify(report, null, 2));
});
