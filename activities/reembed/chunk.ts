import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorType } from '../../src/contracts/errors';
import { manifestKeys, type ChunkManifestRef, type ReembedSpec } from '../../src/contracts/reembed-spec';
import { log } from '@temporalio/activity';
import { chunkDocument, validateChunking } from '../../src/embeddings/chunker';
import { loadDocuments } from '../../src/embeddings/documents';
import { ForgelineError } from '../../src/ports/errors';
import type { ArtifactStore } from '../../src/ports/artifact-store';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';
import { chunked, requireTokenizer, withHeartbeat, type LabelledQuery, type ManifestChunk } from './common';

const DEFAULT_QUERIES_FILE = 'queries.jsonl';

/** Labelled queries from JSON lines `{"query": "...", "relevant": ["doc id", ...]}`; a bad line is a terminal error naming it. */
export function parseLabelledQueries(text: string, where: string): LabelledQuery[] {
  const out: LabelledQuery[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let q: { query?: unknown; relevant?: unknown };
    try {
      q = JSON.parse(line) as typeof q;
    } catch (err) {
      throw new ForgelineError(ErrorType.InvalidSpec, `validation.queries: ${where} line ${i + 1} is not JSON (${(err as Error).message})`, true);
    }
    if (typeof q.query !== 'string' || !q.query.trim() || !Array.isArray(q.relevant) || q.relevant.length === 0 || !q.relevant.every((r) => typeof r === 'string')) {
      throw new ForgelineError(ErrorType.InvalidSpec, `validation.queries: ${where} line ${i + 1}: expected {"query": "<text>", "relevant": ["<document id>", ...]} with at least one relevant document`, true);
    }
    out.push({ query: q.query, relevant: q.relevant as string[] });
  });
  return out;
}

/** The spec's labelled queries: validation.queries, else `queries.jsonl` at the root of a folder corpus, else none. */
async function readLabelledQueries(spec: ReembedSpec, artifacts: ArtifactStore): Promise<LabelledQuery[]> {
  const q = spec.validation.queries;
  if (q && 'artifact' in q) {
    const head = await artifacts.head(q.artifact);
    if (!head) throw new ForgelineError(ErrorType.InvalidSpec, `validation.queries.artifact: ${q.artifact} is not in the artifact store ${artifacts.rootUri}`, true);
    return parseLabelledQueries((await artifacts.getBytes(q.artifact)).toString('utf8'), q.artifact);
  }
  const file = q ? q.file : 'folder' in spec.corpus.source ? path.join(spec.corpus.source.folder, DEFAULT_QUERIES_FILE) : undefined;
  if (!file) return [];
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' && !q) return undefined;
    throw new ForgelineError(ErrorType.InvalidSpec, `validation.queries.file: cannot read ${file}: ${err.message}`, true);
  });
  return text === undefined ? [] : parseLabelledQueries(text, file);
}

export function createChunkActivities(deps: ActivityDeps) {
  const { artifacts } = deps;
  return {
    /**
     * Control queue: list the corpus, chunk each document with the embedding model's tokenizer,
     * and write the chunk manifest to the artifact store (`reembed/<index>/<version>/chunks/*.jsonl`,
     * `sliceChunks` chunks a slice) with the labelled queries next to it. Only counts return to
     * the workflow, so a large corpus never enters its history. A chunk id that repeats (the same
     * text in two documents) is kept once.
     */
    async chunkCorpus(input: { spec: ReembedSpec; version: string }): Promise<ChunkManifestRef> {
      return asActivityFailure(async () => {
        const { spec, version } = input;
        const prefix = manifestKeys.prefix(spec.store.index, version);
        const queries = await readLabelledQueries(spec, artifacts);
        const source = spec.corpus.source;
        const where = 'folder' in source ? `folder ${source.folder}` : `artifact prefix ${source.artifactPrefix} of ${artifacts.rootUri}`;
        const tokenizer = requireTokenizer(deps, spec.embedding.model);
        const chunking = { tokenizer, ...spec.chunking };
        for (const w of validateChunking(chunking).warnings) log.warn(w);
        // No supported document, a file that is not UTF-8, one over the size limit: terminal, naming the file.
        const { documents: docs } = await loadDocuments('folder' in source ? { folder: source.folder } : { artifacts, prefix: source.artifactPrefix });
        const seen = new Set<string>();
        const chunks: ManifestChunk[] = [];
        let bytes = 0;
        await withHeartbeat(() => ({ documents: docs.length, chunks: chunks.length }), async () => {
          for (const [n, doc] of docs.entries()) {
            // Chunking is synchronous CPU work: give the worker's event loop a turn now and then
            // (workflow tasks and heartbeats of the same worker wait on it).
            if (n % 20 === 19) await new Promise((r) => setImmediate(r));
            bytes += Buffer.byteLength(doc.text);
            for (const c of chunkDocument(doc, chunking)) {
              if (seen.has(c.id)) continue;
              seen.add(c.id);
              chunks.push({ id: c.id, text: c.text, document: doc.id, section: c.section, offset: c.startChar, tokens: c.tokenCount });
            }
          }
        });
        if (chunks.length === 0) throw new ForgelineError(ErrorType.InvalidSpec, `corpus.source: the ${docs.length} documents in ${where} hold no text; nothing was written`, true);
        const slices = chunked(chunks, spec.sliceChunks);
        for (const [i, slice] of slices.entries()) await artifacts.put(manifestKeys.slice(prefix, i), slice.map((c) => JSON.stringify(c)).join('\n') + '\n', { contentType: 'application/x-ndjson' });
        await artifacts.put(manifestKeys.queries(prefix), JSON.stringify(queries), { contentType: 'application/json' });
        const manifest: ChunkManifestRef = { prefix, documents: docs.length, chunks: chunks.length, slices: slices.length, bytes, queries: queries.length };
        await artifacts.put(`${prefix}manifest.json`, JSON.stringify({ ...manifest, chunking: spec.chunking, model: spec.embedding.model }, null, 2), { contentType: 'application/json' });
        return manifest;
      });
    },
  };
}
