import { ApplicationFailure, ChildWorkflowFailure, ParentClosePolicy, setHandler, startChild, workflowInfo } from '@temporalio/workflow';
import { ErrorType } from '../../src/contracts/errors';
import {
  PromptReleaseOutcome,
  promptOutcomeOfFailure,
  PromptReleaseStage,
  promptChildWorkflowId,
  type PromptReleasePush,
  type PromptReleasePushResult,
  type PromptReleaseResult,
} from '../../src/contracts/prompt-release';
import { asStage } from '../../workflows/release/failures';
import { control } from './activities';
import { promptStatusQuery, PROMPT_MESSAGE_DESCRIPTIONS } from './messages';
import { PromptReleaseState } from './state';

/**
 * A push's prompt release: read and validate every changed `prompts/<name>/` folder at the commit
 * (one bad file fails the push's release and starts nothing), then release each prompt in a child
 * workflow `<this ID>/<name>` (deterministic: a retried or replayed parent names the same
 * children), all at once, and wait for them. Each child is steered on its own (approve, pause,
 * rollback by its ID). The parent succeeds when every prompt was promoted; otherwise it fails
 * naming each prompt that was not, with the first such child's failure type.
 */
export async function releasePush(push: PromptReleasePush): Promise<PromptReleasePushResult> {
  const { workflowId: releaseId } = workflowInfo();
  const state = new PromptReleaseState(releaseId, undefined, PromptReleaseStage.Resolve);
  const { status } = state;
  status.prompt = `(push ${push.repo}@${push.sha.slice(0, 12)})`;
  status.git = { repo: push.repo, ref: push.ref, sha: push.sha };
  setHandler(promptStatusQuery, () => status, { description: PROMPT_MESSAGE_DESCRIPTIONS.status });
  try {
    const { releases } = await asStage('resolve', () => control.resolvePromptReleases(push));
    status.children = releases.map((r) => ({ prompt: r.prompt, workflowId: promptChildWorkflowId(releaseId, r.prompt), outcome: PromptReleaseOutcome.Running }));
    state.publish();
    const handles = await Promise.all(
      releases.map((r) =>
        startChild('promptReleaseWorkflow', {
          workflowId: promptChildWorkflowId(releaseId, r.prompt),
          args: [r],
          // An aborted or terminated push asks its children to stop (each restores its route).
          parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
          staticSummary: `prompt release ${r.prompt} of ${push.repo}@${push.sha.slice(0, 12)}`,
        }),
      ),
    );
    const results = await Promise.allSettled(handles.map((h) => h.result() as Promise<PromptReleaseResult>));
    const out: PromptReleasePushResult = { releaseId, outcome: PromptReleaseOutcome.Promoted, sha: push.sha, releases: [] };
    let firstType: string | undefined;
    results.forEach((r, i) => {
      const child = status.children![i]!;
      if (r.status === 'fulfilled') {
        child.outcome = PromptReleaseOutcome.Promoted;
        out.releases.push({ prompt: child.prompt, workflowId: child.workflowId, outcome: child.outcome, version: r.value.version });
        return;
      }
      const cause = r.reason instanceof ChildWorkflowFailure ? r.reason.cause : r.reason;
      const type = cause instanceof ApplicationFailure ? (cause.type ?? '') : '';
      child.outcome = promptOutcomeOfFailure(type);
      child.failure = String((cause as Error)?.message ?? cause).split('\n', 1)[0]!;
      firstType ??= type || 'PromptReleaseFailed';
      out.releases.push({ prompt: child.prompt, workflowId: child.workflowId, outcome: child.outcome, failure: child.failure });
    });
    state.setStage(PromptReleaseStage.Done);
    const failed = out.releases.filter((r) => r.outcome !== PromptReleaseOutcome.Promoted);
    if (failed.length) {
      throw ApplicationFailure.nonRetryable(
        `${failed.length} of ${out.releases.length} prompt release(s) not promoted: ${failed.map((f) => `${f.prompt} ${f.outcome} (${f.failure})`).join('; ')}`,
        firstType,
        out,
      );
    }
    state.setOutcome(PromptReleaseOutcome.Promoted);
    return out;
  } catch (err) {
    const type = err instanceof ApplicationFailure ? (err.type ?? '') : '';
    const outcome = status.children?.length && status.children.every((c) => c.outcome !== PromptReleaseOutcome.Running) && type !== ErrorType.InvalidSpec ? promptOutcomeOfFailure(type) : PromptReleaseOutcome.Failed;
    state.setOutcome(outcome, String((err as Error)?.message ?? err).split('\n', 1)[0]);
    throw err;
  }
}
