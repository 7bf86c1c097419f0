import { ReembedStage, type PreparedVersion, type ReembedSpec } from '../../src/contracts/reembed-spec';
import { control } from './activities';
import type { ReembedState } from './state';

/** Stage swap: move the alias to the new version if it still points where it did when the re-embed began (compare-and-swap). */
export async function swap(state: ReembedState, spec: ReembedSpec, prepared: PreparedVersion): Promise<void> {
  state.setStage(ReembedStage.Swap);
  const moved = await control.swapIndexAlias({ index: spec.store.index, alias: spec.store.alias, version: prepared.version, expected: prepared.aliasAt });
  state.progress.swappedAt = moved.movedAt;
  state.publish();
}
