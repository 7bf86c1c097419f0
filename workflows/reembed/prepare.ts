import { ReembedStage, type PreparedVersion, type ReembedSpec } from '../../src/contracts/reembed-spec';
import { control, local } from './activities';
import type { ReembedState } from './state';

/** Stage validate: the spec again (a run started by hand in the UI fails with the CLI's message). */
export async function validate(state: ReembedState, raw: unknown): Promise<ReembedSpec> {
  state.setStage(ReembedStage.Validate);
  const spec = await local.validateReembedSpec(raw);
  Object.assign(state.progress, { corpus: spec.corpus.name, index: spec.store.index, alias: spec.store.alias });
  return spec;
}

/**
 * Stage prepare, after chunking (so a corpus that cannot be read writes nothing to the store):
 * read where the alias points (the previous version) and create the new version.
 */
export async function prepare(state: ReembedState, spec: ReembedSpec, version: string): Promise<PreparedVersion> {
  state.setStage(ReembedStage.Prepare);
  const prepared = await control.prepareIndexVersion({ spec, version });
  if (prepared.previous) state.progress.previous = prepared.previous.version;
  state.publish();
  return prepared;
}
