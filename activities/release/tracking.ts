import type { CanaryMetricResult } from '../../src/contracts/canary-analysis';
import type { CanaryStepAnalysis, ReleaseOutcome } from '../../src/contracts/release-lifecycle';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { safeId, type RecipeTools } from './run-recipe';

/**
 * Control queue: the release's lifecycle run in the tracker (gates, outcome). Best-effort: the
 * workflow calls these through `tracked()`, so a tracker outage never changes a release's outcome.
 */
export function createTrackingActivities(tools: RecipeTools) {
  return {
    /** One tracker run per release, grouped by model alias. */
    async openReleaseRun(input: { releaseId: string; spec: ReleaseSpec }): Promise<{ runId: string; url: string }> {
      const runId = safeId(input.releaseId);
      const run = await tools.openRun({ ...input, runId });
      await run.setConfig({ spec: input.spec, releaseId: input.releaseId });
      await run.flush();
      return { runId, url: run.url };
    },

    /** The gate verdict into the tracker run, as a table. */
    async logGateResults(input: { runId: string; spec: ReleaseSpec; gates: Array<{ gate: string; passed: boolean; reason: string }> }): Promise<void> {
      const run = await tools.openRun(input);
      await run.logTable('gates', ['gate', 'passed', 'reason'], input.gates.map((g) => [g.gate, g.passed, g.reason]));
      await run.flush();
    },

    /** One canary analysis: the verdict and each metric's figures, as a row per metric. */
    async logCanaryAnalysis(input: { runId: string; spec: ReleaseSpec; analysis: CanaryStepAnalysis; metrics: CanaryMetricResult[] }): Promise<void> {
      const run = await tools.openRun(input);
      const { analysis: a } = input;
      await run.log({ 'canary/step': a.step, 'canary/weight': a.weight, 'canary/pass': a.verdict === 'Pass' ? 1 : 0, 'canary/fail': a.verdict === 'Fail' ? 1 : 0 });
      await run.logTable(
        `canary_step_${a.step}_bake_${a.bake}`,
        ['metric', 'verdict', 'stable', 'candidate', 'effect', 'threshold', 'p_value', 'alpha', 'samples_stable', 'samples_candidate', 'critical', 'reason'],
        input.metrics.map((m) => [m.metric, m.verdict, m.stable, m.candidate, m.effect, m.threshold, m.pValue, m.alpha, m.samples.stable, m.samples.candidate, m.critical, m.reason]),
      );
      await run.flush();
    },

    /** The run's outcome (and who decided), then finish it. */
    async closeReleaseRun(input: { runId: string; spec: ReleaseSpec; outcome: ReleaseOutcome; decidedBy?: string }): Promise<void> {
      const run = await tools.openRun(input);
      await run.setSummary({ outcome: input.outcome, ...(input.decidedBy ? { decided_by: input.decidedBy } : {}) });
      await run.finish(input.outcome === 'Candidate' || input.outcome === 'Promoted' ? 0 : 1);
    },
  };
}
