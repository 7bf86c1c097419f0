import type { Duration } from '@temporalio/common';
import { condition } from '@temporalio/workflow';
import type { CanaryStepAnalysis } from '../src/contracts/release-lifecycle';

/** What the stepper reads of the operators' requests (each release's CanaryControl has this shape and more). */
export interface OperatorControl {
  paused: boolean;
  promoteNow?: { by: string; reason: string };
  rollback?: { by: string; reason: string };
}

/** How a canary ended: promote the candidate, or roll back (and why). */
export type CanaryEnd = { promote: true; why: string } | { promote: false; why: string };

/** One step of a canary: the candidate's share of traffic and how long it serves before the window is analyzed. */
export interface CanaryStepPlan {
  weight: number;
  bake: Duration;
  /** The bake timer's summary in the history and the UI. */
  bakeSummary: string;
  /** Why the route changes (the routing table's audit reason). */
  reason: string;
}

/** A canary, as the model release and the prompt release run it; only routing and analysis differ. */
export interface CanarySteps {
  steps: CanaryStepPlan[];
  /** Inconclusive windows served again before the canary pauses for an operator. */
  maxExtensions: number;
  control: OperatorControl;
  /** The status the UI and `status` query show: the step, and why it is paused. */
  status: { step: number; paused: boolean; pausedReason?: string };
  publish(): void;
  setWeight(weight: number, reason: string): Promise<void>;
  /** Where the step's window starts (at 100% a stable side may have no traffic in the step's own window). */
  windowStart(at: { weight: number; stepStart: number; canaryStart: number }): number;
  analyze(at: { step: number; weight: number; from: number; bake: number }): Promise<Pick<CanaryStepAnalysis, 'verdict' | 'summary'>>;
  /** The pause reason once a step stays inconclusive after every extension. */
  undecided(at: { step: number; weight: number; bakes: number }): string;
}

/** The operators' decision, if one was made: a rollback wins over promote-now. */
export function operatorDecision(control: OperatorControl): CanaryEnd | undefined {
  if (control.rollback) return { promote: false, why: `rolled back by ${control.rollback.by}: ${control.rollback.reason}` };
  if (control.promoteNow) return { promote: true, why: `promoted by ${control.promoteNow.by}: ${control.promoteNow.reason}` };
  return undefined;
}

/**
 * For each step: shift traffic, bake (the clock stops while paused; a resumed step bakes again
 * from the start), then analyze the step's window. Pass → next step; Fail → roll back;
 * Inconclusive → bake again, at most `maxExtensions` times, then pause for an operator.
 * Operators may pause, resume, promote now or roll back at any moment (Updates set `control`).
 */
export async function runCanarySteps(run: CanarySteps): Promise<CanaryEnd> {
  const { control, status } = run;
  const decided = () => operatorDecision(control);
  let canaryStart: number | undefined;
  for (let i = 0; i < run.steps.length; i++) {
    const { weight, bake, bakeSummary, reason } = run.steps[i]!;
    status.step = i + 1;
    if (decided()) return decided()!;
    await run.setWeight(weight, reason);
    const stepStart = Date.now();
    canaryStart ??= stepStart;
    const from = run.windowStart({ weight, stepStart, canaryStart });
    let bakes = 0;
    let extensions = 0;
    for (;;) {
      const held = await condition(() => control.paused || decided() !== undefined, bake, { summary: bakeSummary });
      if (decided()) return decided()!;
      if (held) {
        await condition(() => !control.paused || decided() !== undefined);
        if (decided()) return decided()!;
        continue; // resumed: bake again from the start
      }
      bakes++;
      const analysis = await run.analyze({ step: i + 1, weight, from, bake: bakes });
      if (analysis.verdict === 'Pass') break;
      if (analysis.verdict === 'Fail') return { promote: false, why: `canary failed at step ${i + 1} (${weight}%): ${analysis.summary}` };
      if (extensions < run.maxExtensions) {
        extensions++;
        continue;
      }
      control.paused = true;
      status.paused = true;
      status.pausedReason = run.undecided({ step: i + 1, weight, bakes });
      run.publish();
      await condition(() => !control.paused || decided() !== undefined);
      if (decided()) return decided()!;
      extensions = 0;
    }
  }
  return { promote: true, why: `canary passed ${run.steps.length} step(s)` };
}
