import { Context } from '@temporalio/activity';
import { manifestKeys, type SlicePlan, type SliceRef } from '../../src/contracts/reembed-spec';
import { parseNpy } from '../../src/drift/npy';
import type { Metadata, VectorRecord } from '../../src/ports/vector-store';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';
import { chunked, ID_BATCH, mapBounded, readJson, readSlice, requireStore, withHeartbeat, type ManifestChunk } from './common';

/** Longest chunk text kept in a record's metadata (answers show it; stores cap metadata size). */
const METADATA_TEXT_CHARS = 2000;

/** A record's metadata: where the chunk comes from, its text, and the model that embedded it. */
export function chunkMetadata(c: ManifestChunk, model: string): Metadata {
  return { document: c.document, section: c.section, offset: c.offset, tokens: c.tokens, model, text: c.text.slice(0, METADATA_TEXT_CHARS) };
}

export function createSliceActivities(deps: ActivityDeps) {
  const { artifacts } = deps;
  return {
    /**
     * Control queue: what one slice of the manifest needs. Chunks the new version holds already (a
     * resumed run) are left alone; chunks the previous version holds, embedded by the same model,
     * are carried over with their vectors (`fetch` → `upsert`), not re-embedded; the rest are
     * written to the slice's todo list for `embedSlice`, longest first, so each batch holds chunks
     * of like length.
     */
    async planSlice(ref: SliceRef): Promise<SlicePlan> {
      return asActivityFailure(async () => {
        const store = requireStore(deps);
        const { index } = ref.spec.store;
        const model = ref.spec.embedding.model;
        const chunks = await readSlice(artifacts, ref.manifest.prefix, ref.slice);
        let present = 0;
        let carried = 0;
        const todo: ManifestChunk[] = [];
        await withHeartbeat(() => ({ slice: ref.slice, present, carried }), async (beat) => {
          for (const part of chunked(chunks, ID_BATCH)) {
            const ids = part.map((c) => c.id);
            const have = await store.existingIds(index, ref.version, ids);
            present += have.size;
            let missing = part.filter((c) => !have.has(c.id));
            if (missing.length && ref.previous?.compatible) {
              const old = await store.fetch(index, ref.previous.version, missing.map((c) => c.id));
              const reusable = new Map(old.filter((r) => r.metadata?.model === model).map((r) => [r.id, r]));
              const carry: VectorRecord[] = missing.filter((c) => reusable.has(c.id)).map((c) => ({ id: c.id, values: reusable.get(c.id)!.values, metadata: chunkMetadata(c, model) }));
              if (carry.length) await store.upsert(index, ref.version, carry);
              carried += carry.length;
              missing = missing.filter((c) => !reusable.has(c.id));
            }
            todo.push(...missing);
            beat();
          }
        });
        // Longest first: a batch of chunks of like length pads little (the model pads every text of a batch to its longest).
        todo.sort((a, b) => b.tokens - a.tokens || (a.id < b.id ? -1 : 1));
        await artifacts.put(manifestKeys.todo(ref.manifest.prefix, ref.slice), JSON.stringify(todo.map((c) => c.id)), { contentType: 'application/json' });
        return { slice: ref.slice, chunks: chunks.length, present, carried, toEmbed: todo.length };
      });
    },

    /**
     * Control queue: upsert the vectors `embedSlice` wrote for a slice into the new version, a
     * batch per vector file, `parallelism.upsert` at once. Idempotent (ids are content hashes;
     * an upsert replaces); the vector files are deleted once their records are in the store.
     */
    async upsertSlice(ref: SliceRef): Promise<{ slice: number; upserted: number }> {
      return asActivityFailure(async () => {
        const store = requireStore(deps);
        const { prefix } = ref.manifest;
        const todo = await readJson<string[]>(artifacts, manifestKeys.todo(prefix, ref.slice));
        const byId = new Map((await readSlice(artifacts, prefix, ref.slice)).map((c) => [c.id, c]));
        const batches = chunked(todo, ref.spec.embedding.batchSize);
        let upserted = 0;
        await withHeartbeat(() => ({ slice: ref.slice, upserted }), async (beat) => {
          await mapBounded(batches, ref.spec.parallelism.upsert, async (ids, b) => {
            Context.current().cancellationSignal.throwIfAborted();
            const key = manifestKeys.vectors(prefix, ref.slice, b);
            const head = await artifacts.head(key);
            if (!head) {
              // Upserted and deleted by an earlier attempt: those records are in the store already.
              upserted += ids.length;
              return;
            }
            const e = parseNpy(await artifacts.getBytes(key), key);
            if (e.rows !== ids.length) throw new Error(`${key} holds ${e.rows} vectors for ${ids.length} chunks`);
            const records: VectorRecord[] = ids.map((id, i) => ({ id, values: e.data.subarray(i * e.cols, (i + 1) * e.cols), metadata: chunkMetadata(byId.get(id)!, ref.spec.embedding.model) }));
            await store.upsert(ref.spec.store.index, ref.version, records);
            await artifacts.delete(key);
            upserted += ids.length;
            beat();
          });
        });
        return { slice: ref.slice, upserted };
      });
    },
  };
}
