import { PromptReleaseStage, type ValidatedPromptRelease } from '../../src/contracts/prompt-release';
import { asStage } from '../../workflows/release/failures';
import { control } from './activities';
import type { PromptReleaseState } from './state';

/** Stage validate: the spec checked again (a release started by hand in the UI fails like the CLI), files read at the commit, the version computed. */
export async function validate(state: PromptReleaseState, raw: unknown): Promise<ValidatedPromptRelease> {
  state.setStage(PromptReleaseStage.Validate);
  const v = await asStage('validate', () => control.validatePromptRelease(raw));
  state.setPrompt(v.spec.prompt, v.git);
  return v;
}
