import { type CancellationScope, condition, setHandler } from '@temporalio/workflow';
import { PromptReleaseOutcome, PromptReleaseStage } from '../../src/contracts/prompt-release';
import type { OperatorDecision, RecordedDecision } from '../../src/contracts/release-lifecycle';
import { canarySteering, type CanaryControl } from '../../workflows/release/canary';
import { workflowNow } from '../../workflows/release/context';
import { refuse, requireWhoAndWhy } from '../../workflows/operator-messages';
import {
  promptAbortUpdate,
  promptApproveUpdate,
  promptPauseUpdate,
  promptPromoteNowUpdate,
  promptRejectUpdate,
  promptResumeUpdate,
  promptRollbackUpdate,
  promptStatusQuery,
  PROMPT_MESSAGE_DESCRIPTIONS as D,
} from './messages';
import type { PromptReleaseState } from './state';

/** The status query and the operators' Updates, each with a validator that refuses what makes no sense now. */
export function installPromptHandlers(state: PromptReleaseState, work: CancellationScope, canary: CanaryControl): void {
  const { status } = state;
  const ended = () => status.outcome !== PromptReleaseOutcome.Running;
  const record = (d: OperatorDecision, kind: RecordedDecision['kind']) => {
    status.decision = { by: d.by.trim(), reason: d.reason.trim(), kind, at: workflowNow() };
    state.publish();
  };
  const notDecided = () => {
    if (status.decision) refuse(`release already ${status.decision.kind} by ${status.decision.by} at ${status.decision.at}`);
  };

  setHandler(promptStatusQuery, () => status, { description: D.status });
  setHandler(
    promptAbortUpdate,
    async (d) => {
      record(d, 'aborted');
      work.cancel();
      await condition(ended);
      return status;
    },
    {
      description: D.abort,
      validator: (d) => {
        requireWhoAndWhy(d);
        if (ended()) refuse(`release already ended (${status.outcome}); nothing to abort`);
        if (canary.closed) refuse('the release is promoting: production is moving to the candidate; roll the prompt back with a new release once it has ended');
        notDecided();
      },
    },
  );
  for (const [update, kind] of [
    [promptApproveUpdate, 'approved'],
    [promptRejectUpdate, 'rejected'],
  ] as const) {
    setHandler(
      update,
      async (d) => {
        record(d, kind);
        // The reply is the state after the decision took effect: the canary started, or the release ended.
        await condition(() => ended() || status.stage !== PromptReleaseStage.Approval);
        return status;
      },
      {
        description: kind === 'approved' ? D.approve : D.reject,
        validator: (d) => {
          requireWhoAndWhy(d);
          notDecided();
          if (!status.awaitingApproval) refuse(`release is not awaiting approval (stage ${status.stage}, outcome ${status.outcome})`);
        },
      },
    );
  }

  const serving = () => status.stage === PromptReleaseStage.Canary;
  const running = () => {
    if (ended()) refuse(`release already ended (${status.outcome})`);
    if (!serving()) refuse(`release is not routing traffic (stage ${status.stage}); it has no canary to steer${status.stage === PromptReleaseStage.Approval ? ' (approve or reject it first)' : ''}`);
  };
  const undecided = () => {
    if (canary.rollback) refuse(`already rolled back by ${canary.rollback.by} at ${canary.rollback.at}`);
    if (canary.promoteNow) refuse(`already promoted by ${canary.promoteNow.by} at ${canary.promoteNow.at}`);
  };
  const steer = canarySteering(canary, status, () => state.publish());
  const options = (description: string, check: () => void) => ({
    description,
    validator: (d: OperatorDecision) => {
      requireWhoAndWhy(d);
      running();
      undecided();
      check();
    },
  });

  setHandler(
    promptPauseUpdate,
    (d) => {
      steer.pause(d);
      return status;
    },
    options(D.pause, () => {
      if (canary.paused) refuse(`the canary is already paused: ${status.canary?.pausedReason ?? ''}`);
    }),
  );
  setHandler(
    promptResumeUpdate,
    (d) => {
      steer.resume(d);
      return status;
    },
    options(D.resume, () => {
      if (!canary.paused) refuse('the canary is not paused; nothing to resume');
    }),
  );
  setHandler(
    promptPromoteNowUpdate,
    async (d) => {
      steer.promoteNow(d);
      await condition(ended);
      return status;
    },
    options(D.promoteNow, () => undefined),
  );
  setHandler(
    promptRollbackUpdate,
    async (d) => {
      steer.rollback(d);
      await condition(ended);
      return status;
    },
    options(D.rollback, () => {
      if (canary.closed) refuse('the release is promoting: production is moving to the candidate');
    }),
  );
}
