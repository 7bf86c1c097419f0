import { upsertSearchAttributes } from '@temporalio/workflow';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { ForgelineGitSha, ForgelineModel } from '../../src/contracts/search-attributes';
import { control } from './activities';
import { asStage } from './failures';
import type { ReleaseState } from './state';

/** Stage validate: the CLI's zod validation again, so a release started by hand in the UI fails the same way. */
export async function validate(state: ReleaseState, rawSpec: unknown): Promise<ReleaseSpec> {
  const spec = await asStage('validate', () => control().validateReleaseSpec(rawSpec));
  state.status.model = spec.model;
  upsertSearchAttributes([
    { key: ForgelineModel, value: spec.model },
    ...(spec.git.sha ? [{ key: ForgelineGitSha, value: spec.git.sha }] : []),
  ]);
  return spec;
}
