import { ApplicationFailure, log } from '@temporalio/workflow';
import { analyzeCanary } from '../../src/contracts/canary-analysis';
import { ErrorType } from '../../src/contracts/errors';
import {
  adapterOfLabel,
  baseLabel,
  quantizedOfLabel,
  ReleaseStage,
  type CanaryAction,
  type CanaryStepAnalysis,
  type ServedVersion,
  type ServingPlan,
} from '../../src/contracts/release-lifecycle';
import type { RouteTargets } from '../../src/contracts/routing';
import { launching, serving, tracked } from './activities';
import { workflowNow, type ReleaseContext } from './context';
import { runCanarySteps, type CanaryEnd } from '../../workflows/canary-steps';
import { asStage } from './failures';

/** What operators asked of a running canary (set by the Update handlers, read by the stage). */
export interface CanaryControl {
  paused: boolean;
  promoteNow?: CanaryAction;
  rollback?: CanaryAction;
  /** Set once the release no longer watches for a rollback (it is finishing). */
  closed?: boolean;
}

/** How a canary ended: promote the candidate, or roll back (and why). */
export type { CanaryEnd } from '../../workflows/canary-steps';

const stableOf = (alias: string, baseModel: string, upstream: string, targets: RouteTargets | undefined): ServedVersion => {
  const heaviest = targets?.reduce((a, b) => (b.weight > a.weight ? b : a));
  if (!heaviest) return { label: baseLabel(alias), servedModel: baseModel, upstream };
  const adapter = adapterOfLabel(heaviest.version);
  const quantized = quantizedOfLabel(heaviest.version);
  return { label: heaviest.version, servedModel: heaviest.model, upstream: heaviest.upstream, ...(adapter ? { adapter } : {}), ...(quantized ? { quantized } : {}) };
};

/**
 * Stage deploy: load the candidate's adapter on the serving backend under its own name (or, with
 * `serving.candidate: quantized`, launch the quantized model on a server of its own and add it to
 * the gateway as an upstream) and note what serves the alias now (stable), so the canary can
 * compare and a rollback can restore.
 */
export async function deploy(ctx: ReleaseContext, versions: Record<string, string>): Promise<ServingPlan> {
  const { spec, state } = ctx;
  const s = spec.serving!;
  const alias = s.alias ?? spec.model;
  state.setStage(ReleaseStage.Deploy);
  const route = await asStage('deploy', () => serving.readRoute({ alias }));
  const stable = stableOf(alias, s.baseModel, s.upstream, route.targets);
  const candidate = await asStage('deploy', () => {
    if (s.candidate !== 'quantized') return serving.deployVersion({ model: spec.model, adapterVersion: versions.adapter!, baseModel: s.baseModel, upstream: s.upstream });
    if (!versions.quantized) throw ApplicationFailure.nonRetryable('serving.candidate is quantized, but the release registered no quantized model (quantization.method none?)', ErrorType.InvalidSpec);
    return launching.launchQuantizedVersion({ model: spec.model, quantizedVersion: versions.quantized, by: `release ${ctx.releaseId}` });
  });
  state.status.canary = {
    alias,
    stable: stable.label,
    candidate: candidate.label,
    step: 0,
    steps: s.canary.steps,
    weights: Object.fromEntries((route.targets ?? []).map((t) => [t.version, t.weight])),
    paused: false,
    analyses: [],
    actions: [],
  };
  state.publish();
  return { releaseId: ctx.releaseId, model: spec.model, alias, baseModel: s.baseModel, ...(route.targets ? { before: route.targets } : {}), stable, candidate, versions };
}

/** Route `percent` of the alias to the candidate and the rest to stable. */
export async function setCanaryWeight(ctx: ReleaseContext, plan: ServingPlan, percent: number, reason: string): Promise<void> {
  const { stable, candidate } = plan;
  const targets: RouteTargets = [
    { version: stable.label, upstream: stable.upstream, model: stable.servedModel, weight: 100 - percent },
    { version: candidate.label, upstream: candidate.upstream, model: candidate.servedModel, weight: percent },
  ];
  await asStage('canary', () => serving.setTrafficWeights({ alias: plan.alias, targets, by: `release ${ctx.releaseId}`, reason }));
  const c = ctx.state.status.canary!;
  c.weights = { [stable.label]: 100 - percent, [candidate.label]: percent };
  ctx.state.publish();
}

/**
 * Stage canary: for each step of the plan, shift traffic, bake, then analyze candidate against
 * stable over the step's window. Pass → next step; Fail → roll back; Inconclusive → bake again
 * (at most `maxExtensions` times), then pause for an operator. Operators may pause, resume,
 * promote now or roll back at any moment (Updates).
 */
export async function runCanary(ctx: ReleaseContext, plan: ServingPlan, control: CanaryControl): Promise<CanaryEnd> {
  const { spec, state } = ctx;
  const { canary: cfg } = spec.serving!;
  state.setStage(ReleaseStage.Canary);
  return runCanarySteps({
    steps: cfg.steps.map((weight, i) => ({
      weight,
      bake: cfg.bake,
      bakeSummary: `canary step ${i + 1} bake (${cfg.bake} at ${weight}%)`,
      reason: `canary step ${i + 1}/${cfg.steps.length}: ${weight}%`,
    })),
    maxExtensions: cfg.maxExtensions,
    control,
    status: state.status.canary!,
    publish: () => state.publish(),
    setWeight: (weight, reason) => setCanaryWeight(ctx, plan, weight, reason),
    // At 100% stable gets no traffic in the step's own window (every analysis would be
    // Inconclusive for lack of stable samples): compare over the whole canary instead.
    windowStart: ({ weight, stepStart, canaryStart }) => (weight >= 100 ? canaryStart : stepStart),
    analyze: (at) => analyze(ctx, plan, at),
    undecided: ({ step, weight, bakes }) => `inconclusive after ${bakes} bake(s) at step ${step} (${weight}%): resume to bake again, promote now, or roll back`,
  });
}

/** Fetch the step's window, analyze it in the workflow (pure; its figures land in the history), record it. */
async function analyze(ctx: ReleaseContext, plan: ServingPlan, at: { step: number; weight: number; from: number; bake: number }): Promise<CanaryStepAnalysis> {
  const { state, spec } = ctx;
  const c = state.status.canary!;
  const to = Date.now();
  const [stable, candidate] = await asStage('canary', () =>
    serving.fetchCanaryMetrics({ alias: plan.alias, versions: [plan.stable.label, plan.candidate.label], from: at.from, to }),
  );
  const result = analyzeCanary(stable!, candidate!, spec.serving!.canary.analysis);
  const recorded: CanaryStepAnalysis = {
    step: at.step,
    weight: at.weight,
    verdict: result.verdict,
    summary: result.summary,
    from: new Date(at.from).toISOString(),
    to: new Date(to).toISOString(),
    bake: at.bake,
  };
  c.analyses.push(recorded);
  c.lastAnalysis = recorded;
  state.publish();
  log.info(`canary step ${at.step} (${at.weight}%): ${result.verdict}: ${result.summary}`);
  await tracked('logCanaryAnalysis', (a) => a.logCanaryAnalysis({ runId: ctx.runId, spec, analysis: recorded, metrics: result.metrics }));
  return recorded;
}

/** A canary decision as the release records it. */
export function canaryAction(kind: CanaryAction['kind'], d: { by: string; reason: string }): CanaryAction {
  return { kind, by: d.by.trim(), reason: d.reason.trim(), at: workflowNow() };
}

/**
 * What an operator's steering does to a running canary, for the model and the prompt release
 * alike: the control the canary stepper reads, and the status operators see (paused, why, and
 * every action). Each release keeps its own validators and decides what its Update waits for.
 */
export function canarySteering(control: CanaryControl, view: { canary?: { paused: boolean; pausedReason?: string; actions: CanaryAction[] } }, publish: () => void) {
  const act = (a: CanaryAction) => {
    view.canary?.actions.push(a);
    publish();
  };
  return {
    pause(d: { by: string; reason: string }): void {
      control.paused = true;
      view.canary!.paused = true;
      view.canary!.pausedReason = `paused by ${d.by.trim()}: ${d.reason.trim()}`;
      act(canaryAction('paused', d));
    },
    resume(d: { by: string; reason: string }): void {
      control.paused = false;
      view.canary!.paused = false;
      delete view.canary!.pausedReason;
      act(canaryAction('resumed', d));
    },
    promoteNow(d: { by: string; reason: string }): void {
      control.promoteNow = canaryAction('promotedNow', d);
      act(control.promoteNow);
    },
    rollback(d: { by: string; reason: string }): void {
      control.rollback = canaryAction('rolledBack', d);
      act(control.rollback);
    },
  };
}

