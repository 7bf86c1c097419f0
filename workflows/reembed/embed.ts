import { addCounts, batchCount, ReembedStage, type ReembedCarry, type ReembedSpec, type SliceRef } from '../../src/contracts/reembed-spec';
import { control, pool } from './activities';
import type { ReembedState } from './state';

/**
 * Stage embed, one slice of the manifest at a time, `parallelism.embed` slices at once:
 * planSlice (skip what the new version holds, carry over what the previous version holds) →
 * embedSlice on the pool's queue (only what is left) → upsertSlice. Returns `continue` once this
 * run has handled `slicesPerRun` slices (the caller continues as new with `carry`), `done` after
 * the last slice. Finished slices are recorded in `carry`, so neither a retry nor a new run redoes them.
 */
export async function embedSlices(state: ReembedState, spec: ReembedSpec, carry: ReembedCarry): Promise<'done' | 'continue'> {
  state.setStage(ReembedStage.Embed);
  const { manifest, prepared } = carry;
  const { progress } = state;
  let handled = 0;
  while (carry.nextSlice < manifest.slices) {
    if (handled >= spec.slicesPerRun) return 'continue';
    const first = carry.nextSlice;
    const wave = Math.min(spec.parallelism.embed, manifest.slices - first, spec.slicesPerRun - handled);
    await Promise.all(
      Array.from({ length: wave }, async (_, i) => {
        const ref: SliceRef = { spec, manifest, version: prepared.version, previous: prepared.previous, slice: first + i };
        const plan = await control.planSlice(ref);
        // The estimate assumed every chunk of the slice needed embedding; now it is known.
        carry.batchesTotal -= batchCount(plan.chunks, spec.embedding.batchSize) - batchCount(plan.toEmbed, spec.embedding.batchSize);
        carry.counts = addCounts(carry.counts, { present: plan.present, carried: plan.carried, upserted: plan.carried });
        progress.counts = carry.counts;
        progress.batches.total = carry.batchesTotal;
        state.publish();
        if (plan.toEmbed === 0) return;
        const embedded = await pool(spec).embedSlice(ref);
        carry.counts = addCounts(carry.counts, { embedded: embedded.embedded, batches: embedded.batches, batchesSkipped: embedded.batchesSkipped });
        progress.batches.done = carry.counts.batches + carry.counts.batchesSkipped;
        progress.counts = carry.counts;
        state.publish();
        const upserted = await control.upsertSlice(ref);
        carry.counts = addCounts(carry.counts, { upserted: upserted.upserted });
        progress.counts = carry.counts;
      }),
    );
    carry.nextSlice = first + wave;
    handled += wave;
    progress.counts = carry.counts;
    progress.slices.done = carry.nextSlice;
    state.publish();
  }
  return 'done';
}
