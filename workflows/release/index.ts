import {
  ApplicationFailure,
  allHandlersFinished,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  setHandler,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import { ErrorType } from '../../src/contracts/errors';
import {
  RejectReason,
  ReleaseOutcome,
  ReleaseStage,
  trackerRunId,
  type OperatorDecision,
  type RecordedDecision,
  type ReleaseStatus,
  type ServingPlan,
} from '../../src/contracts/release-lifecycle';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { GpuLeases } from '../../workflows/gpu-lease';
import { tracked } from './activities';
import { awaitApproval } from './approval';
import { canarySteering, deploy, runCanary, type CanaryControl } from './canary';
import { workflowNow, type ReleaseContext } from './context';
import { evaluate } from './evaluate';
import {
  abortUpdate,
  approveUpdate,
  MESSAGE_DESCRIPTIONS,
  pauseUpdate,
  promoteNowUpdate,
  refuse,
  rejectUpdate,
  requireWhoAndWhy,
  resumeUpdate,
  rollbackUpdate,
  statusQuery,
} from './messages';
import { promoteToProduction } from './production';
import { promoteToCandidate } from './promote';
import { rollbackServing } from './rollback';
import { quantize } from './quantize';
import { register } from './register';
import { OPERATOR_VIEW_PATCH, ReleaseState } from './state';
import { train } from './train';
import { validate } from './validate';

export { abortUpdate, approveUpdate, pauseUpdate, promoteNowUpdate, rejectUpdate, resumeUpdate, rollbackUpdate, statusQuery } from './messages';
export { releaseRollbackWorkflow } from './rollback-workflow';

export interface ReleaseResult {
  releaseId: string;
  model: string;
  /** Candidate: the release ended at the `candidate` alias (no spec.serving). Promoted: it serves as production. */
  outcome: typeof ReleaseOutcome.Candidate | typeof ReleaseOutcome.Promoted;
  versions: Record<string, string>;
  /** With spec.serving: what the release changed, for a later rollback (`forgeline release rollback`). */
  serving?: ServingPlan;
  metrics: Record<string, number>;
  trackerRunUrl: string;
  approvedBy?: string;
  /** The approval: who, when (workflow time) and why. */
  decision?: RecordedDecision;
}

/**
 * One release of a fine-tuned model: validate → train a LoRA adapter → merge + quantize →
 * evaluate against gates → register a candidate with lineage → (optional) human approval →
 * the `candidate` alias. Each stage is a module of its own (workflows/release/<stage>.ts);
 * heavy stages run on `gpu-<pool>`; the history is the audit trail of every decision.
 */
export async function modelReleaseWorkflow(rawSpec: unknown): Promise<ReleaseResult> {
  const { workflowId: releaseId } = workflowInfo();
  const state = new ReleaseState(releaseId, rawSpec);
  const { status } = state;
  const work = new CancellationScope();
  const canary: CanaryControl = { paused: false };
  installHandlers(state, work, canary);

  let ctx: ReleaseContext | undefined;
  let plan: ServingPlan | undefined;
  let rolledBack = false;
  try {
    const result = await work.run(async (): Promise<ReleaseResult> => {
      const spec = await validate(state, rawSpec);
      const run = await tracked('openReleaseRun', (a) => a.openReleaseRun({ releaseId, spec }));
      status.trackerRunUrl = run?.url;
      ctx = { releaseId, spec, runId: run?.runId ?? trackerRunId(releaseId), state, leases: releaseLeases(spec, state) };
      upsertMemo({
        model: spec.model,
        summary: `${spec.model}: ${spec.trainer.recipe} on ${spec.gpu.pool}, quantize ${spec.quantization.method}, ${spec.evaluation.gates.length} gate(s)${spec.approval.required ? ', approval required' : ''}`,
        git: spec.git,
        trackerRun: run?.url ?? null,
      });

      const trained = await train(ctx);
      const quantized = await quantize(ctx, trained);
      const { report, verdict } = await evaluate(ctx, quantized);
      // The last GPU stage: its lease (quota file only) goes back before registration and approval.
      await ctx.leases.releaseHeld();
      const versions = await register(ctx, { trained, quantized, report, gatesPassed: verdict.passed });
      if (!verdict.passed) {
        status.rejectReason = RejectReason.GateFailed;
        const failed = verdict.results.filter((g) => !g.passed).map((g) => g.reason);
        throw ApplicationFailure.nonRetryable(`gate failed: ${failed.join('; ')}`, ErrorType.GateFailed, { gates: status.gates });
      }
      if (spec.approval.required) await awaitApproval(ctx);
      await promoteToCandidate(ctx, versions);

      let outcome: ReleaseResult['outcome'] = ReleaseOutcome.Candidate;
      if (spec.serving) {
        plan = await deploy(ctx, versions);
        const end = await runCanary(ctx, plan, canary);
        const kept = end.promote && (await promoteToProduction(ctx, plan, canary, end.why));
        if (!kept) {
          const why = end.promote ? `rolled back by ${canary.rollback!.by}: ${canary.rollback!.reason}` : end.why;
          await rollBack(ctx, plan, canary.rollback ?? { by: 'forgeline', reason: end.why });
          rolledBack = true;
          throw ApplicationFailure.nonRetryable(`${why}; rolled back`, ErrorType.RolledBack, { canary: status.canary });
        }
        outcome = ReleaseOutcome.Promoted;
      }

      state.setStage(ReleaseStage.Done);
      state.setOutcome(outcome);
      state.recordOutcomeInMemo();
      await closeRun(ctx, outcome);
      return {
        releaseId,
        model: spec.model,
        outcome,
        versions,
        ...(plan ? { serving: plan } : {}),
        metrics: report.summary,
        trackerRunUrl: run?.url ?? '',
        ...(status.decision ? { approvedBy: status.decision.by, decision: status.decision } : {}),
      };
    });
    await condition(allHandlersFinished);
    return result;
  } catch (err) {
    const aborted = isCancellation(err) && status.decision?.kind === 'aborted';
    const failure = aborted
      ? ApplicationFailure.nonRetryable(`release aborted by ${status.decision!.by}: ${status.decision!.reason}`, ErrorType.Aborted, { decision: status.decision })
      : err;
    // A failure or an abort after the candidate began serving restores what served before.
    if (plan && !rolledBack) {
      const why = aborted ? `aborted by ${status.decision!.by}: ${status.decision!.reason}` : `release failed: ${String((err as Error)?.message ?? err).split('\n', 1)[0]}`;
      await rollBack(ctx!, plan, { by: aborted ? status.decision!.by : 'forgeline', reason: why });
      rolledBack = true;
    }
    const outcome = aborted ? ReleaseOutcome.Aborted : rolledBack ? ReleaseOutcome.RolledBack : status.rejectReason ? ReleaseOutcome.Rejected : ReleaseOutcome.Failed;
    state.setOutcome(outcome, failure instanceof Error ? failure.message.split('\n', 1)[0] : String(failure));
    if (aborted) state.setAwaitingApproval(false);
    state.recordOutcomeInMemo();
    if (ctx) {
      const opened = ctx;
      await CancellationScope.nonCancellable(() => opened.leases.releaseHeld(aborted ? 'cancelled' : 'failed'));
      await CancellationScope.nonCancellable(() => closeRun(opened, outcome));
    }
    await condition(allHandlersFinished);
    throw failure;
  }
}

/** GPU leases of the release's GPU stages (a quota file: spec.admission), kept in its status. */
function releaseLeases(spec: ReleaseSpec, state: ReleaseState): GpuLeases {
  return new GpuLeases(spec.admission, {
    lease(view) {
      if (view) state.status.gpuLease = view;
      else delete state.status.gpuLease;
      state.publish();
    },
    preempted(count) {
      state.status.preemptions = count;
      state.publish();
    },
  });
}

/** The rollback saga, with the stage and details kept current. */
async function rollBack(ctx: ReleaseContext, plan: ServingPlan, who: { by: string; reason: string }): Promise<void> {
  ctx.state.setStage(ReleaseStage.Rollback);
  await rollbackServing(plan, who);
  if (ctx.state.status.canary) {
    ctx.state.status.canary.weights = Object.fromEntries((plan.before ?? [{ version: plan.stable.label, weight: 100 }]).map((t) => [t.version, t.weight]));
    ctx.state.publish();
  }
}

/** Close the release's tracker run with its outcome and who decided (best-effort). */
function closeRun(ctx: ReleaseContext, outcome: ReleaseOutcome): Promise<void | undefined> {
  const { decision } = ctx.state.status;
  return tracked('closeReleaseRun', (a) => a.closeReleaseRun({ runId: ctx.runId, spec: ctx.spec, outcome, ...(decision ? { decidedBy: decision.by } : {}) }));
}

/** The status query and the operators' Updates, each with a validator and a description. */
function installHandlers(state: ReleaseState, work: CancellationScope, canary: CanaryControl): void {
  const { status } = state;
  const record = (d: OperatorDecision, kind: RecordedDecision['kind']) => {
    status.decision = { by: d.by.trim(), reason: d.reason.trim(), kind, at: workflowNow() };
    state.publish();
  };
  // The reply is the state after the decision took effect (new executions; see OPERATOR_VIEW_PATCH).
  const settled = async (): Promise<ReleaseStatus> => {
    if (patched(OPERATOR_VIEW_PATCH)) await condition(() => status.outcome !== ReleaseOutcome.Running);
    return status;
  };
  const notDecided = () => {
    if (status.decision) refuse(`release already ${status.decision.kind} by ${status.decision.by} at ${status.decision.at}`);
  };

  setHandler(statusQuery, () => status, { description: MESSAGE_DESCRIPTIONS.status });
  setHandler(
    abortUpdate,
    async (d) => {
      record(d, 'aborted');
      work.cancel();
      return settled();
    },
    {
      description: MESSAGE_DESCRIPTIONS.abort,
      validator: (d) => {
        requireWhoAndWhy(d);
        if (status.outcome !== ReleaseOutcome.Running) refuse(`release already ended (${status.outcome}); nothing to abort`);
        notDecided();
      },
    },
  );
  for (const [update, kind] of [
    [approveUpdate, 'approved'],
    [rejectUpdate, 'rejected'],
  ] as const) {
    setHandler(
      update,
      async (d) => {
        record(d, kind);
        return settled();
      },
      {
        description: MESSAGE_DESCRIPTIONS[kind === 'approved' ? 'approve' : 'reject'],
        validator: (d) => {
          requireWhoAndWhy(d);
          notDecided();
          if (!status.awaitingApproval) refuse(`release is not awaiting approval (stage ${status.stage}, outcome ${status.outcome})`);
        },
      },
    );
  }
  installCanaryHandlers(state, canary);
}

/** Canary steering: pause, resume, promote now, roll back; each refuses what makes no sense now. */
function installCanaryHandlers(state: ReleaseState, canary: CanaryControl): void {
  const { status } = state;
  const serving = () => status.stage === ReleaseStage.Deploy || status.stage === ReleaseStage.Canary;
  const running = () => {
    if (status.outcome !== ReleaseOutcome.Running) refuse(`release already ended (${status.outcome})`);
    if (!status.canary && !serving()) refuse(`release is not serving traffic yet (stage ${status.stage}); it has no canary to steer${status.stage === ReleaseStage.Approval ? ' (approve or reject it first)' : ''}`);
  };
  const undecided = () => {
    if (canary.rollback) refuse(`already rolled back by ${canary.rollback.by} at ${canary.rollback.at}`);
    if (canary.promoteNow) refuse(`already promoted by ${canary.promoteNow.by} at ${canary.promoteNow.at}`);
  };
  const steer = canarySteering(canary, status, () => state.publish());
  const options = (description: string, check: (d: OperatorDecision) => void) => ({
    description,
    validator: (d: OperatorDecision) => {
      requireWhoAndWhy(d);
      running();
      check(d);
    },
  });

  setHandler(
    pauseUpdate,
    (d) => {
      steer.pause(d);
      return status;
    },
    options(MESSAGE_DESCRIPTIONS.pause, () => {
      undecided();
      if (status.stage !== ReleaseStage.Canary) refuse(`the canary is not running (stage ${status.stage}); nothing to pause`);
      if (canary.paused) refuse(`the canary is already paused: ${status.canary?.pausedReason ?? ''}`);
    }),
  );
  setHandler(
    resumeUpdate,
    (d) => {
      steer.resume(d);
      return status;
    },
    options(MESSAGE_DESCRIPTIONS.resume, () => {
      undecided();
      if (!canary.paused) refuse('the canary is not paused; nothing to resume');
    }),
  );
  setHandler(
    promoteNowUpdate,
    async (d) => {
      steer.promoteNow(d);
      await condition(() => status.stage === ReleaseStage.Production || status.stage === ReleaseStage.Done || status.outcome !== ReleaseOutcome.Running);
      return status;
    },
    options(MESSAGE_DESCRIPTIONS.promoteNow, () => {
      undecided();
      if (!serving()) refuse(`the canary is over (stage ${status.stage}); nothing to promote`);
    }),
  );
  setHandler(
    rollbackUpdate,
    async (d) => {
      steer.rollback(d);
      await condition(() => status.outcome !== ReleaseOutcome.Running);
      return status;
    },
    options(MESSAGE_DESCRIPTIONS.rollback, () => {
      if (canary.rollback) refuse(`already rolled back by ${canary.rollback.by} at ${canary.rollback.at}`);
      if (!serving() && status.stage !== ReleaseStage.Production) refuse(`the release is in stage ${status.stage}; it is ${status.stage === ReleaseStage.Rollback ? 'already rolling back' : 'not serving'}`);
      if (canary.closed) refuse('the release is finishing: roll it back once it has ended with `forgeline release rollback`');
    }),
  );
}
