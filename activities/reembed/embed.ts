import { Context } from '@temporalio/activity';
import { manifestKeys, type EmbedSliceResult, type SliceRef } from '../../src/contracts/reembed-spec';
import { formatNpy } from '../../src/drift/npy';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';
import { chunked, readJson, readSlice, requireEmbedder, withHeartbeat, type LabelledQuery } from './common';

/** What an embedSlice attempt heartbeats: the next batch to run; a retry starts there. */
export interface EmbedSliceHeartbeat {
  slice: number;
  nextBatch: number;
  batches: number;
}

export function createEmbedActivities(deps: ActivityDeps) {
  const { artifacts } = deps;
  return {
    /**
     * Pool queue (`gpu-<pool>`): embed a slice's todo chunks with this worker's long-lived embedder,
     * `batchSize` at a time, each batch's vectors written to the artifact store as it finishes
     * (float32 .npy). Heartbeats name the next batch, so a retry after the worker died resumes
     * there; batches whose file exists (written by an attempt whose last heartbeat got lost) are
     * not embedded again. Cancellation stops the running batch (the embedding process is ended).
     */
    async embedSlice(ref: SliceRef): Promise<EmbedSliceResult> {
      return asActivityFailure(async () => {
        const ctx = Context.current();
        const embedder = requireEmbedder(deps, ref.spec.embedding.model);
        const { prefix } = ref.manifest;
        const todo = new Set(await readJson<string[]>(artifacts, manifestKeys.todo(prefix, ref.slice)));
        const texts = new Map((await readSlice(artifacts, prefix, ref.slice)).filter((c) => todo.has(c.id)).map((c) => [c.id, c.text]));
        const batches = chunked([...todo], ref.spec.embedding.batchSize);
        const prior = ctx.info.heartbeatDetails as EmbedSliceHeartbeat | undefined;
        let next = prior?.slice === ref.slice ? Math.min(prior.nextBatch, batches.length) : 0;
        const skipped = next;
        let embedded = 0;
        let found = 0;
        await withHeartbeat(() => ({ slice: ref.slice, nextBatch: next, batches: batches.length }) satisfies EmbedSliceHeartbeat, async (beat) => {
          for (; next < batches.length; next++) {
            ctx.cancellationSignal.throwIfAborted();
            const ids = batches[next]!;
            const key = manifestKeys.vectors(prefix, ref.slice, next);
            if (await artifacts.head(key)) {
              found++;
              continue;
            }
            const e = await embedder.embed(ids.map((id) => texts.get(id)!), { signal: ctx.cancellationSignal });
            await artifacts.put(key, formatNpy(e), { contentType: 'application/octet-stream' });
            embedded += ids.length;
            beat();
          }
        });
        return { slice: ref.slice, embedded, batches: batches.length - skipped - found, batchesSkipped: skipped + found };
      });
    },

    /** Pool queue: embed the labelled queries (copied next to the manifest by chunkCorpus) for validation. */
    async embedQueries(input: { prefix: string; model: string }): Promise<{ queries: number }> {
      return asActivityFailure(async () => {
        const embedder = requireEmbedder(deps, input.model);
        const queries = await readJson<LabelledQuery[]>(artifacts, manifestKeys.queries(input.prefix));
        const e = await embedder.embed(queries.map((q) => q.query), { signal: Context.current().cancellationSignal });
        await artifacts.put(manifestKeys.queryVectors(input.prefix), formatNpy(e), { contentType: 'application/octet-stream' });
        return { queries: queries.length };
      });
    },
  };
}
