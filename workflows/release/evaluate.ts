import type { EvalResult, QuantizeResult } from '../../activities/release';
import { evaluateGates, type GateVerdict } from '../../src/contracts/release-gates';
import { ReleaseStage } from '../../src/contracts/release-lifecycle';
import { gpuActivities, gpuStage, tracked } from './activities';
import { stageInput, type ReleaseContext } from './context';
import { asStage } from './failures';

/**
 * Stage evaluate: score the candidate against the comparator (activity runEvalSuite, recipe
 * evaluate.py), then decide the gates in workflow code, so the verdict is in the history.
 */
export async function evaluate(ctx: ReleaseContext, quantized: QuantizeResult): Promise<{ report: EvalResult; verdict: GateVerdict }> {
  const { spec, state } = ctx;
  state.setStage(ReleaseStage.Evaluate);
  const report = await asStage('evaluate', () =>
    ctx.leases.run('evaluate', 1, (leased, run) =>
      gpuActivities(spec.gpu).runEvalSuite.executeWithOptions(
        { ...gpuStage(spec.gpu, `Score the candidate against ${spec.evaluation.compareTo} on eval suite ${spec.evaluation.suite}`), ...leased },
        [{ ...stageInput(ctx, run), merged: quantized.merged, quantized: quantized.quantized }],
      ),
    ),
  );
  const verdict = evaluateGates(report, spec.evaluation.gates);
  state.status.gates = verdict.results.map((r) => ({ gate: r.gate, passed: r.passed, reason: r.reason }));
  state.publish();
  await tracked('logGateResults', (a) => a.logGateResults({ runId: ctx.runId, spec, gates: state.status.gates! }));
  return { report, verdict };
}
