import { batchCount, ReembedStage, type ChunkManifestRef, type ReembedSpec } from '../../src/contracts/reembed-spec';
import { control } from './activities';
import type { ReembedState } from './state';

/** Stage chunk: list and chunk the corpus into a manifest in the artifact store (only counts come back). */
export async function chunk(state: ReembedState, spec: ReembedSpec, version: string): Promise<ChunkManifestRef> {
  state.setStage(ReembedStage.Chunk);
  const manifest = await control.chunkCorpus({ spec, version });
  Object.assign(state.progress, {
    documents: manifest.documents,
    chunks: manifest.chunks,
    slices: { done: 0, total: manifest.slices },
    batches: { done: 0, total: batchCount(manifest.chunks, spec.embedding.batchSize) },
  });
  state.publish();
  return manifest;
}
