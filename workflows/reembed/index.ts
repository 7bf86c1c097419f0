import { allHandlersFinished, condition, ContinueAsNew, continueAsNew, setHandler, upsertMemo, workflowInfo } from '@temporalio/workflow';
import { batchCount, ReembedOutcome, ReembedStage, versionName, zeroCounts, type ReembedCarry, type ReembedResult, type ReembedSpec } from '../../src/contracts/reembed-spec';
import { chunk } from './chunk';
import { embedSlices } from './embed';
import { progressQuery } from './messages';
import { prepare, validate } from './prepare';
import { retire } from './retire';
import { ReembedState } from './state';
import { swap } from './swap';
import { validateIndex } from './validate-index';

export { progressQuery } from './messages';

/**
 * Re-embed a corpus into a new version of a vector index, blue/green: validate → chunk (a
 * manifest in the artifact store) → prepare (read the alias, create the version) → embed, slice by
 * slice (unchanged chunks carried over from the previous version; the rest embedded on
 * `gpu-<pool>` by a long-lived model process, then upserted) → validate-index (counts, recall@k,
 * MRR, overlap@k) → swap the alias (compare-and-swap) → retire the previous version after
 * `retireAfter` on a durable timer. Large corpora continue as new every `slicesPerRun` slices,
 * carrying what is done (`carry`), so each run's history stays bounded.
 */
export async function reembedCorpusWorkflow(rawSpec: unknown, carry?: ReembedCarry): Promise<ReembedResult> {
  const state = new ReembedState(workflowInfo().workflowId, rawSpec, carry);
  setHandler(progressQuery, () => state.progress, { description: 'The re-embed now: stage, slices and embedding batches done of their totals, counts, validation, swap and retirement.' });
  try {
    const spec = await validateOrCarried(state, rawSpec, carry);
    if (!carry) {
      // The run's start (in its history), not Date.now(): the version name must come out the same
      // on every replay, and a workflow task that held a local activity open can replay at another time.
      const startedAt = workflowInfo().runStartTime.toISOString();
      const version = spec.store.version ?? versionName(new Date(startedAt));
      state.progress.version = version;
      const manifest = await chunk(state, spec, version);
      const prepared = await prepare(state, spec, version);
      upsertMemo({ summary: `${spec.corpus.name} → ${spec.store.index}/${version} (alias ${spec.store.alias}), ${spec.embedding.model} on gpu-${spec.pool}`, store: prepared.store });
      carry = { startedAt, prepared, manifest, nextSlice: 0, counts: zeroCounts(), batchesTotal: batchCount(manifest.chunks, spec.embedding.batchSize), continuedAsNew: 0 };
    }
    if ((await embedSlices(state, spec, carry)) === 'continue') {
      await condition(allHandlersFinished);
      return await continueAsNew<typeof reembedCorpusWorkflow>(spec, { ...carry, continuedAsNew: carry.continuedAsNew + 1 });
    }
    const { prepared, manifest } = carry;
    const validation = await validateIndex(state, spec, manifest, prepared);
    await swap(state, spec, prepared);
    const retired = await retire(state, spec, prepared);
    state.setStage(ReembedStage.Done);
    state.setOutcome(ReembedOutcome.Succeeded);
    await condition(allHandlersFinished);
    return {
      index: spec.store.index,
      alias: spec.store.alias,
      version: prepared.version,
      previous: prepared.previous?.version ?? null,
      documents: manifest.documents,
      chunks: manifest.chunks,
      counts: carry.counts,
      validation,
      retired,
      continuedAsNew: carry.continuedAsNew,
    };
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    state.setOutcome(ReembedOutcome.Failed, err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message).split('\n', 1)[0] : String(err));
    await condition(allHandlersFinished);
    throw err;
  }
}

/** A continued run's spec was validated by the first run. */
async function validateOrCarried(state: ReembedState, raw: unknown, carry: ReembedCarry | undefined): Promise<ReembedSpec> {
  return carry ? (raw as ReembedSpec) : validate(state, raw);
}
