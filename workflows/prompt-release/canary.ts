import { log } from '@temporalio/workflow';
import { analyzeCanary } from '../../src/contracts/canary-analysis';
import { analyzeFirstRelease, PromptReleaseStage, promptVersionLabel } from '../../src/contracts/prompt-release';
import type { CanaryStepAnalysis } from '../../src/contracts/release-lifecycle';
import type { CanaryControl, CanaryEnd } from '../../workflows/release/canary';
import { asStage } from '../../workflows/release/failures';
import { runCanarySteps } from '../../workflows/canary-steps';
import { tracked, traffic } from './activities';
import { actor, type PromptReleaseContext } from './context';

/** Route `percent` of the prompt's traffic to the candidate and the rest to production (a first release: all to the candidate). */
export async function setPromptWeight(ctx: PromptReleaseContext, percent: number, reason: string): Promise<void> {
  const targets = ctx.production ? [{ version: ctx.production.version, weight: 100 - percent }, { version: ctx.version, weight: percent }] : [{ version: ctx.version, weight: 100 }];
  const set = await asStage('canary', () => traffic.setPromptTraffic({ name: ctx.prompt.name, targets, by: actor(ctx), reason }));
  ctx.state.status.canary!.weights = set.weights;
  ctx.state.publish();
}

/**
 * Stage canary: for each step, route the step's weight to the candidate (the rest to production),
 * let it serve for the step's duration (a durable timer; a pause stops it, and a resumed step
 * serves its whole duration again), then analyze the window with the model release's canary
 * analysis. Pass → next step; Fail → roll back; too few requests or Inconclusive → serve again
 * (at most `maxExtensions` times), then pause for an operator. Operators may pause, resume,
 * promote now or roll back at any moment (Updates). A first release (no production) has nothing
 * to compare with: the candidate serves alone and each window is checked on its own
 * (analyzeFirstRelease).
 */
export async function runPromptCanary(ctx: PromptReleaseContext, control: CanaryControl): Promise<CanaryEnd> {
  const { spec, state } = ctx;
  const cfg = spec.canary;
  const name = ctx.prompt.name;
  state.setStage(PromptReleaseStage.Canary);
  state.status.canary = {
    ...(ctx.production ? { production: promptVersionLabel(name, ctx.production.version) } : {}),
    candidate: promptVersionLabel(name, ctx.version),
    step: 0,
    steps: cfg.steps,
    weights: {},
    paused: false,
    analyses: [],
    actions: [],
  };
  state.publish();
  return runCanarySteps({
    steps: cfg.steps.map(({ weight, durationSeconds }, i) => ({
      weight,
      bake: durationSeconds * 1000,
      bakeSummary: `prompt canary step ${i + 1}: ${durationSeconds}s at ${weight}%`,
      reason: `prompt canary step ${i + 1}/${cfg.steps.length}: ${weight}%`,
    })),
    maxExtensions: cfg.maxExtensions,
    control,
    status: state.status.canary,
    publish: () => state.publish(),
    setWeight: (weight, reason) => setPromptWeight(ctx, weight, reason),
    // At 100% production serves nothing in the step's own window: compare over the whole canary.
    windowStart: ({ weight, stepStart, canaryStart }) => (weight >= 100 && ctx.production ? canaryStart : stepStart),
    analyze: (at) => analyze(ctx, at),
    undecided: ({ step, weight, bakes }) => `undecided after ${bakes} window(s) at step ${step} (${weight}%): resume to serve again, promote now, or roll back`,
  });
}

/** Fetch the window's per-version metrics, judge them in the workflow (pure; the figures land in the history), record the verdict. */
async function analyze(ctx: PromptReleaseContext, at: { step: number; weight: number; from: number; bake: number }): Promise<CanaryStepAnalysis> {
  const { state, spec } = ctx;
  const c = state.status.canary!;
  const to = Date.now();
  const versions = ctx.production ? [ctx.production.version, ctx.version] : [ctx.version];
  const metrics = await asStage('canary', () => traffic.fetchPromptCanaryMetrics({ name: ctx.prompt.name, versions, from: at.from, to }));
  const candidate = metrics[metrics.length - 1]!;
  const { minRequests, analysis: policy } = spec.canary;
  let verdict: CanaryStepAnalysis['verdict'];
  let summary: string;
  let details: ReturnType<typeof analyzeCanary>['metrics'] | undefined;
  if (candidate.requests < minRequests) {
    verdict = 'Inconclusive';
    summary = `${candidate.requests} candidate request(s) in the window, ${minRequests} needed (canary.minRequests)`;
  } else if (ctx.production) {
    const result = analyzeCanary(metrics[0]!, candidate, policy);
    ({ verdict, summary } = result);
    details = result.metrics;
  } else {
    ({ verdict, summary } = analyzeFirstRelease(candidate, policy, minRequests));
  }
  const recorded: CanaryStepAnalysis = { step: at.step, weight: at.weight, verdict, summary, from: new Date(at.from).toISOString(), to: new Date(to).toISOString(), bake: at.bake };
  c.analyses.push(recorded);
  c.lastAnalysis = recorded;
  state.publish();
  log.info(`prompt canary step ${at.step} (${at.weight}%): ${verdict}: ${summary}`);
  await tracked('logPromptRelease', (a) => a.logPromptRelease({ releaseId: ctx.releaseId, prompt: ctx.prompt.name, event: { kind: 'canary', analysis: recorded, ...(details ? { metrics: details } : {}) } }));
  return recorded;
}
