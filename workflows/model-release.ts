import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  defineUpdate,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { ErrorType } from '../src/contracts/errors';
import { evaluateGates } from '../src/contracts/release-gates';
import {
  RejectReason,
  ReleaseOutcome,
  ReleaseStage,
  type OperatorDecision,
  type ReleaseStatus,
} from '../src/contracts/release-lifecycle';
import type { ReleaseSpec } from '../src/contracts/release-spec';
import { ForgelineGitSha, ForgelineModel, ForgelineOutcome, ForgelineStage } from '../src/contracts/search-attributes';
import { gpuTaskQueue } from '../src/contracts/task-queues';

export const statusQuery = defineQuery<ReleaseStatus>('status');
export const approveUpdate = defineUpdate<ReleaseStatus, [OperatorDecision]>('approve');
export const rejectUpdate = defineUpdate<ReleaseStatus, [OperatorDecision]>('reject');
export const abortUpdate = defineUpdate<ReleaseStatus, [OperatorDecision]>('abort');

export interface ReleaseResult {
  releaseId: string;
  model: string;
  outcome: typeof ReleaseOutcome.Candidate;
  versions: Record<string, string>;
  metrics: Record<string, number>;
  trackerRunUrl: string;
  approvedBy?: string;
}

const control = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 10, nonRetryableErrorTypes: [ErrorType.InvalidSpec] },
});

/** Heavy stages: long-running, heartbeating, retried after a worker dies (spot preemption). */
function gpuOptions(gpu: ReleaseSpec['gpu'], summary: string): ActivityOptions {
  return {
    taskQueue: gpuTaskQueue(gpu.pool),
    startToCloseTimeout: '12 hours',
    // A worker silent this long is presumed gone (spot preemption): the stage moves to another
    // worker and resumes from the checkpoint named in its last heartbeat.
    heartbeatTimeout: gpu.heartbeatTimeout,
    retry: { initialInterval: '5 seconds', maximumAttempts: 5, nonRetryableErrorTypes: [ErrorType.InvalidSpec, ErrorType.RecipeFailed] },
    summary,
  };
}

function requireDecision(d: OperatorDecision): void {
  if (!d || typeof d.by !== 'string' || !d.by.trim()) throw new Error('`by` is required: who is deciding (e.g. your email)');
  if (typeof d.reason !== 'string' || !d.reason.trim()) throw new Error('`reason` is required: it goes into the audit trail');
}

/**
 * One release of a fine-tuned model: validate → train a LoRA adapter → merge + quantize →
 * evaluate against gates → register a candidate with lineage → (optional) human approval.
 * Heavy stages run on `gpu-<pool>`; the history is the audit trail of every decision.
 */
export async function modelReleaseWorkflow(rawSpec: unknown): Promise<ReleaseResult> {
  const { workflowId } = workflowInfo();
  const status: ReleaseStatus = {
    model: typeof (rawSpec as { model?: unknown })?.model === 'string' ? (rawSpec as { model: string }).model : 'unknown',
    stage: ReleaseStage.Validate,
    outcome: ReleaseOutcome.Running,
    awaitingApproval: false,
    versions: {},
  };
  const setStage = (stage: ReleaseStage) => {
    status.stage = stage;
    upsertSearchAttributes([{ key: ForgelineStage, value: stage }]);
  };
  const setOutcome = (outcome: ReleaseStatus['outcome']) => {
    status.outcome = outcome;
    upsertSearchAttributes([{ key: ForgelineOutcome, value: outcome }]);
  };

  const work = new CancellationScope();
  setHandler(statusQuery, () => status);
  setHandler(
    abortUpdate,
    (d) => {
      status.decision = { ...d, kind: 'aborted' };
      work.cancel();
      return status;
    },
    {
      validator: (d) => {
        requireDecision(d);
        if (status.outcome !== ReleaseOutcome.Running) throw new Error(`release already ended (${status.outcome}); nothing to abort`);
        if (status.decision) throw new Error(`release already ${status.decision.kind} by ${status.decision.by}`);
      },
    },
  );
  const decide = (kind: 'approved' | 'rejected') => ({
    handler: (d: OperatorDecision) => {
      status.decision = { ...d, kind };
      return status;
    },
    validator: (d: OperatorDecision) => {
      requireDecision(d);
      if (!status.awaitingApproval) throw new Error(`release is not awaiting approval (stage ${status.stage}, outcome ${status.outcome})`);
      if (status.decision) throw new Error(`release already ${status.decision.kind} by ${status.decision.by}`);
    },
  });
  const approve = decide('approved');
  const reject = decide('rejected');
  setHandler(approveUpdate, approve.handler, { validator: approve.validator });
  setHandler(rejectUpdate, reject.handler, { validator: reject.validator });

  upsertSearchAttributes([
    { key: ForgelineStage, value: status.stage },
    { key: ForgelineOutcome, value: status.outcome },
  ]);

  let opened: { runId: string; spec: ReleaseSpec } | undefined;
  try {
    return await work.run(async () => {
      const spec: ReleaseSpec = await control.validateReleaseSpec(rawSpec);
      status.model = spec.model;
      upsertSearchAttributes([
        { key: ForgelineModel, value: spec.model },
        ...(spec.git.sha ? [{ key: ForgelineGitSha, value: spec.git.sha }] : []),
      ]);
      const run = await control.openReleaseRun({ releaseId: workflowId, spec });
      status.trackerRunUrl = run.url;
      opened = { runId: run.runId, spec };
      upsertMemo({
        model: spec.model,
        summary: `${spec.model}: ${spec.trainer.recipe} on ${spec.gpu.pool}, quantize ${spec.quantization.method}, ${spec.evaluation.gates.length} gate(s)${spec.approval.required ? ', approval required' : ''}`,
        git: spec.git,
        trackerRun: run.url,
      });
      // executeWithOptions carries each stage's summary sentence for the Temporal UI.
      const gpu = proxyActivities<Activities>(gpuOptions(spec.gpu, ''));
      const stageInput = { releaseId: workflowId, runId: run.runId, spec };

      setStage(ReleaseStage.Train);
      const trained = await gpu.trainAdapter.executeWithOptions(
        gpuOptions(spec.gpu, `Fine-tune a LoRA adapter (r=${spec.trainer.lora.r}) for ${spec.model} on gpu-${spec.gpu.pool}, checkpointing every ${spec.trainer.checkpointEvery} steps`),
        [stageInput],
      );
      status.training = { step: trained.totalSteps, totalSteps: trained.totalSteps, loss: trained.finalLoss, checkpointStep: trained.totalSteps };

      setStage(ReleaseStage.Quantize);
      const quantized = await gpu.quantizeModel.executeWithOptions(
        gpuOptions(spec.gpu, `Merge the adapter into the base model and quantize it (${spec.quantization.method}, ${spec.quantization.bits}-bit)`),
        [{ ...stageInput, adapter: trained.adapter }],
      );

      setStage(ReleaseStage.Evaluate);
      const report = await gpu.runEvalSuite.executeWithOptions(
        gpuOptions(spec.gpu, `Score the candidate against ${spec.evaluation.compareTo} on eval suite ${spec.evaluation.suite}`),
        [{ ...stageInput, merged: quantized.merged, quantized: quantized.quantized }],
      );
      const verdict = evaluateGates(report, spec.evaluation.gates);
      status.gates = verdict.results.map((r) => ({ gate: r.gate, passed: r.passed, reason: r.reason }));
      await control.logGateResults({ runId: run.runId, spec, gates: status.gates });

      setStage(ReleaseStage.Register);
      const registered = await control.registerRelease({
        releaseId: workflowId,
        spec,
        trained,
        quantized,
        report,
        gatesPassed: verdict.passed,
      });
      status.versions = registered.versions;

      if (!verdict.passed) {
        status.rejectReason = RejectReason.GateFailed;
        const failed = verdict.results.filter((g) => !g.passed).map((g) => g.reason);
        throw ApplicationFailure.nonRetryable(`release rejected: ${failed.join('; ')}`, ErrorType.GateFailed, { gates: status.gates });
      }

      if (spec.approval.required) {
        setStage(ReleaseStage.Approval);
        status.awaitingApproval = true;
        const decided = await condition(() => status.decision !== undefined, spec.approval.timeout);
        status.awaitingApproval = false;
        if (!decided) {
          status.rejectReason = RejectReason.ApprovalTimeout;
          throw ApplicationFailure.nonRetryable(`release rejected: ApprovalTimeout (no decision within ${spec.approval.timeout})`, ErrorType.Rejected, { reason: RejectReason.ApprovalTimeout });
        }
        if (status.decision?.kind === 'rejected') {
          status.rejectReason = RejectReason.OperatorRejected;
          throw ApplicationFailure.nonRetryable(`release rejected by ${status.decision.by}: ${status.decision.reason}`, ErrorType.Rejected, { reason: RejectReason.OperatorRejected, decision: status.decision });
        }
      }

      await control.promoteCandidate({ releaseId: workflowId, model: spec.model, versions: registered.versions, by: status.decision?.by ?? 'forgeline', reason: status.decision?.reason ?? 'gates passed' });
      setStage(ReleaseStage.Done);
      setOutcome(ReleaseOutcome.Candidate);
      opened = undefined;
      await control.closeReleaseRun({ runId: run.runId, spec, outcome: ReleaseOutcome.Candidate });
      return {
        releaseId: workflowId,
        model: spec.model,
        outcome: ReleaseOutcome.Candidate,
        versions: registered.versions,
        metrics: report.summary,
        trackerRunUrl: run.url,
        ...(status.decision ? { approvedBy: status.decision.by } : {}),
      };
    });
  } catch (err) {
    const aborted = isCancellation(err) && status.decision?.kind === 'aborted';
    setOutcome(aborted ? ReleaseOutcome.Aborted : status.rejectReason ? ReleaseOutcome.Rejected : ReleaseOutcome.Failed);
    if (opened) {
      const { runId, spec } = opened;
      await CancellationScope.nonCancellable(() => control.closeReleaseRun({ runId, spec, outcome: status.outcome }));
    }
    if (aborted) {
      throw ApplicationFailure.nonRetryable(`release aborted by ${status.decision!.by}: ${status.decision!.reason}`, ErrorType.Aborted, { decision: status.decision });
    }
    throw err;
  }
}
