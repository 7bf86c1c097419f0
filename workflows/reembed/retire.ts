import { ActivityFailure, ApplicationFailure, log, sleep } from '@temporalio/workflow';
import { ErrorType } from '../../src/contracts/errors';
import { ReembedStage, type PreparedVersion, type ReembedSpec } from '../../src/contracts/reembed-spec';
import { durationMs } from '../../src/contracts/specs/release-spec';
import { control } from './activities';
import type { ReembedState } from './state';

/**
 * Stage retire: a durable timer of `retireAfter`, then the previous version is dropped. If an
 * alias points at it by then (an operator moved one back), the store refuses and it is kept.
 * Returns the version dropped, or null.
 */
export async function retire(state: ReembedState, spec: ReembedSpec, prepared: PreparedVersion): Promise<string | null> {
  const previous = prepared.previous?.version;
  if (!previous) return null;
  state.setStage(ReembedStage.Retire);
  state.progress.retireAt = new Date(Date.now() + durationMs(spec.retireAfter)).toISOString();
  state.publish();
  await sleep(durationMs(spec.retireAfter));
  try {
    await control.dropIndexVersion({ index: spec.store.index, version: previous });
  } catch (err) {
    const cause = err instanceof ActivityFailure ? err.cause : undefined;
    if (!(cause instanceof ApplicationFailure && cause.type === ErrorType.VectorStoreRejected)) throw err;
    log.warn(`previous version ${spec.store.index}/${previous} kept: ${cause.message}`);
    state.progress.failure = `previous version kept: ${cause.message}`;
    state.publish();
    return null;
  }
  state.progress.retired = previous;
  state.publish();
  return previous;
}
