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
} from '../../src/contracts/release-lifecycle';
import { tracked } from './activities';
import { awaitApproval } from './approval';
import { workflowNow, type ReleaseContext } from './context';
import { evaluate } from './evaluate';
import { abortUpdate, approveUpdate, MESSAGE_DESCRIPTIONS, refuse, rejectUpdate, requireWhoAndWhy, statusQuery } from './messages';
import { promoteToCandidate } from './promote';
import { quantize } from './quantize';
import { register } from './register';
import { OPERATOR_VIEW_PATCH, ReleaseState } from './state';
import { train } from './train';
import { validate } from './validate';

export { abortUpdate, approveUpdate, rejectUpdate, statusQuery } from './messages';

export interface ReleaseResult {
  releaseId: string;
  model: string;
  outcome: typeof ReleaseOutcome.Candidate;
  versions: Record<string, string>;
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
  installHandlers(state, work);

  let ctx: ReleaseContext | undefined;
  try {
    const result = await work.run(async (): Promise<ReleaseResult> => {
      const spec = await validate(state, rawSpec);
      const run = await tracked('openReleaseRun', (a) => a.openReleaseRun({ releaseId, spec }));
      status.trackerRunUrl = run?.url;
      ctx = { releaseId, spec, runId: run?.runId ?? trackerRunId(releaseId), state };
      upsertMemo({
        model: spec.model,
        summary: `${spec.model}: ${spec.trainer.recipe} on ${spec.gpu.pool}, quantize ${spec.quantization.method}, ${spec.evaluation.gates.length} gate(s)${spec.approval.required ? ', approval required' : ''}`,
        git: spec.git,
        trackerRun: run?.url ?? null,
      });

      const trained = await train(ctx);
      const quantized = await quantize(ctx, trained);
      const { report, verdict } = await evaluate(ctx, quantized);
      const versions = await register(ctx, { trained, quantized, report, gatesPassed: verdict.passed });
      if (!verdict.passed) {
        status.rejectReason = RejectReason.GateFailed;
        const failed = verdict.results.filter((g) => !g.passed).map((g) => g.reason);
        throw ApplicationFailure.nonRetryable(`gate failed: ${failed.join('; ')}`, ErrorType.GateFailed, { gates: status.gates });
      }
      if (spec.approval.required) await awaitApproval(ctx);
      await promoteToCandidate(ctx, versions);

      state.setStage(ReleaseStage.Done);
      state.setOutcome(ReleaseOutcome.Candidate);
      state.recordOutcomeInMemo();
      await closeRun(ctx, ReleaseOutcome.Candidate);
      return {
        releaseId,
        model: spec.model,
        outcome: ReleaseOutcome.Candidate,
        versions,
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
    const outcome = aborted ? ReleaseOutcome.Aborted : status.rejectReason ? ReleaseOutcome.Rejected : ReleaseOutcome.Failed;
    state.setOutcome(outcome, failure instanceof Error ? failure.message.split('\n', 1)[0] : String(failure));
    if (aborted) state.setAwaitingApproval(false);
    state.recordOutcomeInMemo();
    if (ctx) {
      const opened = ctx;
      await CancellationScope.nonCancellable(() => closeRun(opened, outcome));
    }
    await condition(allHandlersFinished);
    throw failure;
  }
}

/** Close the release's tracker run with its outcome and who decided (best-effort). */
function closeRun(ctx: ReleaseContext, outcome: ReleaseOutcome): Promise<void | undefined> {
  const { decision } = ctx.state.status;
  return tracked('closeReleaseRun', (a) => a.closeReleaseRun({ runId: ctx.runId, spec: ctx.spec, outcome, ...(decision ? { decidedBy: decision.by } : {}) }));
}

/** The status query and the operators' Updates, each with a validator and a description. */
function installHandlers(state: ReleaseState, work: CancellationScope): void {
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
}
