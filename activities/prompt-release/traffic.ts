import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { ErrorType } from '../../src/contracts/errors';
import { promptRouteTarget, promptVersionLabel, type PromptRouteTargets, type VersionMetrics } from '../../src/contracts/routing';
import type { TrafficRouter } from '../../src/ports/traffic-router';
import { PromptRegistry } from '../../src/registry/prompt-registry';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';

/** At most this many latency samples and feedback scores per version, so a busy window fits in the history. */
const MAX_SAMPLES = 2_000;

function thin(xs: number[], n: number): number[] {
  if (xs.length <= n) return xs;
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(xs[Math.floor((i * xs.length) / n)]!);
  return out;
}

const empty = (version: string): VersionMetrics => ({ version, requests: 0, errors: 0, latencyMs: [], feedback: [], promptTokens: 0, completionTokens: 0 });

/**
 * Control queue: a prompt's route on the gateway (`/v1/prompts/<name>/...`) and its per-version
 * metrics. Setting a route is idempotent (the same targets again change nothing a client sees),
 * so a retry after a lost reply is safe; the versions' prompts come from the registry, never from
 * the workflow's input, so the gateway serves exactly what was published.
 */
export function createPromptTrafficActivities(deps: Pick<ActivityDeps, 'artifacts' | 'router'>) {
  const registry = new PromptRegistry(deps.artifacts);
  const requireRouter = (): TrafficRouter => {
    if (!deps.router) throw ApplicationFailure.nonRetryable('this control worker has no gateway: set FORGELINE_GATEWAY_URL and FORGELINE_GATEWAY_ADMIN_TOKEN to run prompt canaries', ErrorType.ServingNotConfigured);
    return deps.router;
  };

  return {
    /** Route the prompt's traffic to these published versions by weight (percent). */
    async setPromptTraffic(input: { name: string; targets: Array<{ version: string; weight: number }>; by: string; reason: string }): Promise<{ tableVersion: number; weights: Record<string, number> }> {
      const r = requireRouter();
      return asActivityFailure(async () => {
        const targets: PromptRouteTargets = [];
        for (const t of input.targets) {
          const record = await registry.resolve(input.name, t.version);
          targets.push(promptRouteTarget(record.prompt, t.version, t.weight));
        }
        const table = await r.setPromptRoute(input.name, targets, { by: input.by, reason: input.reason });
        return { tableVersion: table.version, weights: Object.fromEntries(targets.map((t) => [t.version, t.weight])) };
      });
    },

    /** Remove the prompt's route (a first release rolled back: nothing served it before). Absent: no change. */
    async clearPromptTraffic(input: { name: string; by: string; reason: string }): Promise<{ tableVersion: number }> {
      const r = requireRouter();
      const table = await asActivityFailure(() => r.deletePromptRoute(input.name, { by: input.by, reason: input.reason }));
      return { tableVersion: table.version };
    },

    /** Per-version metrics of the prompt over [from, to), in the order of `versions` (a version without requests: zeros). */
    async fetchPromptCanaryMetrics(input: { name: string; versions: string[]; from: number; to: number }): Promise<VersionMetrics[]> {
      const r = requireRouter();
      heartbeat();
      const all = await asActivityFailure(() => r.promptMetrics(input.name, { from: input.from, to: input.to }));
      return input.versions.map((v) => {
        const label = promptVersionLabel(input.name, v);
        const m = all.find((x) => x.version === label) ?? empty(label);
        return { ...m, latencyMs: thin(m.latencyMs, MAX_SAMPLES), feedback: thin(m.feedback, MAX_SAMPLES) };
      });
    },
  };
}
