import { ApplicationFailure, allHandlersFinished, CancellationScope, condition, isCancellation, workflowInfo } from '@temporalio/workflow';
import { ErrorType } from '../../src/contracts/errors';
import {
  isPromptReleasePush,
  PromptReleaseOutcome,
  promptOutcomeOfFailure,
  PromptReleaseStage,
  type PromptReleasePushResult,
  type PromptReleaseResult,
} from '../../src/contracts/prompt-release';
import { RejectReason } from '../../src/contracts/release-lifecycle';
import { awaitApproval } from '../../workflows/release/approval';
import type { CanaryControl } from '../../workflows/release/canary';
import { tracked } from './activities';
import { runPromptCanary } from './canary';
import type { PromptReleaseContext } from './context';
import { evaluate } from './evaluate';
import { installPromptHandlers } from './handlers';
import { promoteToProduction } from './production';
import { publish } from './publish';
import { releasePush } from './push';
import { rollBackPrompt } from './rollback';
import { PromptReleaseState } from './state';
import { validate } from './validate';

export { promptStatusQuery } from './messages';

/**
 * The release of a prompt version, like a model's: validate → publish (immutable version,
 * `candidate` alias) → evaluate against the test set and gates → optional approval → canary
 * through the gateway (the prompt version is the routing dimension) → `production`, or rollback.
 *
 * Input: one prompt's release (`forgeline prompt release`: the spec with the prompt and test set
 * inlined), or a push (`{repo, ref, sha, paths}` from the webhook): the push's changed
 * `prompts/<name>/` folders are read and validated together, then each prompt is released by a
 * child workflow `<this workflow ID>/<name>`.
 */
export async function promptReleaseWorkflow(input: unknown): Promise<PromptReleaseResult | PromptReleasePushResult> {
  if (isPromptReleasePush(input)) return releasePush(input);
  return releasePrompt(input);
}

async function releasePrompt(raw: unknown): Promise<PromptReleaseResult> {
  const { workflowId: releaseId } = workflowInfo();
  const named = (raw as { prompt?: unknown } | undefined)?.prompt;
  const state = new PromptReleaseState(releaseId, typeof named === 'string' && named ? named : undefined, PromptReleaseStage.Validate);
  const { status } = state;
  const work = new CancellationScope();
  const canary: CanaryControl = { paused: false };
  installPromptHandlers(state, work, canary);

  let ctx: PromptReleaseContext | undefined;
  let routed = false;
  let rolledBack = false;
  try {
    const result = await work.run(async (): Promise<PromptReleaseResult> => {
      const v = await validate(state, raw);
      ctx = await publish({ releaseId, spec: v.spec, prompt: v.prompt, testSet: v.testSet, version: v.version, state, ...(v.git ? { git: v.git } : {}) });
      if (ctx.production?.version === ctx.version) {
        // Same content as production: nothing to evaluate, route or move.
        state.setStage(PromptReleaseStage.Done);
        state.setOutcome(PromptReleaseOutcome.Promoted);
        await logOutcome(ctx);
        return { releaseId, prompt: ctx.prompt.name, outcome: PromptReleaseOutcome.Promoted, version: ctx.version, note: `${ctx.prompt.name}@${ctx.version} is production already` };
      }
      const evaluation = await evaluate(ctx);
      if (v.spec.approval.required) await awaitApproval(ctx);
      routed = true;
      const end = await runPromptCanary(ctx, canary);
      if (!end.promote) {
        await rollBackPrompt(ctx, canary.rollback ?? { by: 'forgeline', reason: end.why });
        rolledBack = true;
        throw ApplicationFailure.nonRetryable(`${end.why}; rolled back`, ErrorType.RolledBack, { canary: status.canary });
      }
      await promoteToProduction(ctx, canary, end.why);
      state.setStage(PromptReleaseStage.Done);
      state.setOutcome(PromptReleaseOutcome.Promoted);
      await logOutcome(ctx);
      return {
        releaseId,
        prompt: ctx.prompt.name,
        outcome: PromptReleaseOutcome.Promoted,
        version: ctx.version,
        ...(ctx.production ? { replaced: ctx.production.version } : {}),
        evaluation,
        ...(status.decision ? { decision: status.decision } : {}),
      };
    });
    await condition(allHandlersFinished);
    return result;
  } catch (err) {
    const aborted = isCancellation(err) && status.decision?.kind === 'aborted';
    const failure = aborted
      ? ApplicationFailure.nonRetryable(`prompt release aborted by ${status.decision!.by}: ${status.decision!.reason}`, ErrorType.Aborted, { decision: status.decision })
      : err;
    // A failure or an abort once the canary may have routed traffic restores the prompt's route.
    if (ctx && routed && !rolledBack) {
      const why = aborted ? `aborted by ${status.decision!.by}: ${status.decision!.reason}` : `release failed: ${firstLine(err)}`;
      await rollBackPrompt(ctx, { by: aborted ? status.decision!.by : 'forgeline', reason: why });
      rolledBack = true;
    }
    const type = failure instanceof ApplicationFailure ? failure.type ?? '' : '';
    const outcome =
      aborted ? PromptReleaseOutcome.Aborted
      : rolledBack ? PromptReleaseOutcome.RolledBack
      : status.rejectReason === RejectReason.GateFailed ? PromptReleaseOutcome.GateFailed
      : status.rejectReason ? PromptReleaseOutcome.Rejected
      : promptOutcomeOfFailure(type);
    if (aborted) state.status.awaitingApproval = false;
    state.setOutcome(outcome, firstLine(failure));
    if (ctx) {
      const opened = ctx;
      await CancellationScope.nonCancellable(() => logOutcome(opened));
    }
    await condition(allHandlersFinished);
    throw failure;
  }
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n', 1)[0]!;
}

async function logOutcome(ctx: PromptReleaseContext): Promise<void> {
  const { status } = ctx.state;
  await tracked('logPromptRelease', (a) =>
    a.logPromptRelease({
      releaseId: ctx.releaseId,
      prompt: ctx.prompt.name,
      event: {
        kind: 'outcome',
        outcome: status.outcome,
        versions: { candidate: ctx.version, ...(ctx.production ? { production: ctx.production.version } : {}) },
        ...(status.decision ? { decidedBy: status.decision.by } : {}),
        ...(status.failure ? { failure: status.failure } : {}),
      },
    }),
  );
}
