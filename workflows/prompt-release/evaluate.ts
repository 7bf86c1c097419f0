import { ApplicationFailure } from '@temporalio/workflow';
import { ErrorType } from '../../src/contracts/errors';
import { PromptReleaseStage, summarizePromptEval, type PromptEvalSummary } from '../../src/contracts/prompt-release';
import { RejectReason } from '../../src/contracts/release-lifecycle';
import { asStage } from '../../workflows/release/failures';
import { evaluation, tracked } from './activities';
import type { PromptReleaseContext } from './context';

/**
 * Stage evaluate: the candidate (and the current production, when there is one) scored on the
 * test set by `evaluatePromptVersion`; the gates decide. A failed gate ends the release
 * GateFailed: `candidate` stays on the version (it was evaluated and is inspectable), nothing is routed.
 */
export async function evaluate(ctx: PromptReleaseContext): Promise<PromptEvalSummary> {
  const { state, releaseId, spec } = ctx;
  state.setStage(PromptReleaseStage.Evaluate);
  const result = await asStage('evaluate', () =>
    evaluation.evaluatePromptVersion({
      releaseId,
      prompt: { name: ctx.prompt.name, version: ctx.version, spec: ctx.prompt },
      ...(ctx.production && ctx.production.version !== ctx.version ? { production: ctx.production } : {}),
      config: spec.evaluation,
      testSet: ctx.testSet,
    }),
  );
  const summary = summarizePromptEval(result);
  state.status.evaluation = summary;
  state.publish();
  await tracked('logPromptRelease', (a) => a.logPromptRelease({ releaseId, prompt: ctx.prompt.name, event: { kind: 'evaluated', evaluation: summary } }));
  if (!summary.passed) {
    state.status.rejectReason = RejectReason.GateFailed;
    const failed = summary.gates.filter((g) => !g.passed).map((g) => `${g.gate}: ${g.reason}`);
    throw ApplicationFailure.nonRetryable(`gate failed: ${failed.join('; ') || 'the evaluation did not pass'}`, ErrorType.GateFailed, { gates: summary.gates });
  }
  return summary;
}
