import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { ErrorType } from '../../src/contracts/errors';
import { quantizedLabel, quantizedServedName, type ServedVersion } from '../../src/contracts/release-lifecycle';
import type { RouteTargets, VersionMetrics } from '../../src/contracts/routing';
import { ForgelineError } from '../../src/ports/errors';
import type { ModelLauncher } from '../../src/ports/model-launcher';
import type { ServingBackend } from '../../src/ports/serving-backend';
import { RouteConflictError, type TrafficRouter } from '../../src/ports/traffic-router';
import { versionRef, type AliasVersions } from '../../src/registry/model-registry';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';
import { safeId } from './run-recipe';

/** The served name of an adapter version: unique per version, never reused for other weights. */
export function adapterServedName(model: string, version: string): string {
  return `${model}-${version}`;
}

const sameTargets = (a: RouteTargets | undefined, b: RouteTargets): boolean =>
  !!a && a.length === b.length && a.every((t, i) => t.version === b[i]!.version && t.model === b[i]!.model && t.upstream === b[i]!.upstream && t.weight === b[i]!.weight);

/** At most `n` samples, evenly spaced, so a busy window still fits in the workflow history. */
function thin(xs: number[], n: number): number[] {
  if (xs.length <= n) return xs;
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(xs[Math.floor((i * xs.length) / n)]!);
  return out;
}

export function createServingActivities(deps: ActivityDeps) {
  const serving = (): ServingBackend => deps.serving ?? notConfigured('a serving backend (FORGELINE_VLLM_URLS)');
  const router = (): TrafficRouter => deps.router ?? notConfigured('the gateway (FORGELINE_GATEWAY_URL and FORGELINE_GATEWAY_ADMIN_TOKEN)');
  const servingDir = () => deps.servingDir ?? path.join(deps.workDir, 'serving');

  const launcher = (): ModelLauncher => deps.launcher ?? notConfigured('model launcher (FORGELINE_SERVING_DIR) to serve quantized candidates on servers of their own');

  /**
   * A registry version's files unpacked under the serving dir as `<name>`: fetched into a private
   * directory, then renamed into place. A complete directory is never replaced (a server may be
   * reading it): when two attempts race, the first rename wins and the other discards its copy.
   */
  const unpack = async (ref: string, name: string): Promise<string> => {
    const dir = path.join(servingDir(), name);
    const complete = () => existsSync(path.join(dir, '.forgeline-complete'));
    if (complete()) return dir;
    const record = await deps.registry.resolve(ref);
    const tmp = `${dir}.partial-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    try {
      await deps.artifacts.fetchDirectory(record.artifact.prefix, tmp);
      await writeFile(path.join(tmp, '.forgeline-complete'), `${record.ref}\n`);
      await mkdir(path.dirname(dir), { recursive: true });
      try {
        await rename(tmp, dir);
      } catch (err) {
        if (complete()) return dir; // another attempt put the same version in place first
        // A leftover without the completion marker (not ours to keep): replace it.
        await rm(dir, { recursive: true, force: true });
        await rename(tmp, dir).catch((again: unknown) => {
          if (!complete()) throw again;
        });
      }
      return dir;
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  };

  return {
    /**
     * Control queue: make a quantized version servable on a server of its own: unpack it under the
     * serving dir, launch its server (launch id = served name = upstream name, one per version),
     * and register that server as a gateway upstream. Idempotent: a retry, or a worker after a
     * restart, finds the files, the running server and the upstream. Heartbeats while the server
     * starts (tens of seconds on CPU).
     */
    async launchQuantizedVersion(input: { model: string; quantizedVersion: string; by: string }): Promise<ServedVersion> {
      return asActivityFailure(async () => {
        const { model, quantizedVersion } = input;
        const name = quantizedServedName(model, quantizedVersion);
        const models = launcher(); // before any work: a worker without one fails at once
        const ctx = Context.current();
        // A whole model can take minutes to fetch from the store: keep heartbeating meanwhile.
        ctx.heartbeat({ message: `unpacking ${name}` });
        const beat = setInterval(() => ctx.heartbeat({ message: `unpacking ${name}` }), 10_000);
        let dir: string;
        try {
          dir = await unpack(versionRef(model, 'quantized', quantizedVersion), name);
        } finally {
          clearInterval(beat);
        }
        const launched = await models.launch({ id: name, modelDir: dir, servedModelName: name, onProgress: (message) => ctx.heartbeat({ message }) });
        ctx.heartbeat({ message: `${name} serves at ${launched.url} (${launched.where}${launched.adopted ? ', already running' : ''}); registering upstream ${name}` });
        // Compare-and-swap; a concurrent change (another attempt registering the same URL) is re-read.
        for (let attempt = 1; ; attempt++) {
          const table = await router().getTable();
          const now = table.upstreams[name]?.urls;
          if (now?.length === 1 && now[0] === launched.url) break;
          try {
            await router().setUpstream(name, [launched.url], { expectedVersion: table.version, by: input.by, reason: `quantized ${model}@${quantizedVersion} launched (${launched.where})` });
            break;
          } catch (err) {
            if (!(err instanceof RouteConflictError) || attempt >= 5) throw err;
          }
        }
        return { label: quantizedLabel(model, quantizedVersion), servedModel: name, upstream: name, quantized: { model, version: quantizedVersion } };
      });
    },

    /**
     * Control queue: take a quantized version out of service: remove its gateway upstream, stop its
     * server, delete its unpacked files. Refused (terminal) while a route still sends it traffic.
     * Idempotent: what is already gone is skipped.
     */
    async stopQuantizedVersion(input: { servedModel: string; by: string; reason: string }): Promise<void> {
      return asActivityFailure(async () => {
        const name = input.servedModel;
        const table = await router().getTable();
        const users = Object.entries(table.routes).filter(([, r]) => r.targets.some((t) => t.upstream === name && t.weight > 0));
        if (users.length) {
          throw new ForgelineError(ErrorType.ServingRejected, `will not stop ${name}: route(s) ${users.map(([a]) => a).join(', ')} still send it traffic; move them off it first`, true);
        }
        if (table.upstreams[name]) await router().deleteUpstream(name, { by: input.by, reason: input.reason });
        Context.current().heartbeat({ message: `stopping ${name}` });
        await launcher().stop(name);
        await rm(path.join(servingDir(), name), { recursive: true, force: true });
      });
    },

    /**
     * Control queue: make an adapter version servable: unpack it where the replicas read it and
     * load it under its own name. Idempotent (a retry finds the files and the adapter loaded).
     */
    async deployVersion(input: { model: string; adapterVersion: string; baseModel: string; upstream: string }): Promise<ServedVersion> {
      return asActivityFailure(async () => {
        const { model, adapterVersion } = input;
        const name = adapterServedName(model, adapterVersion);
        const dir = await unpack(versionRef(model, 'adapter', adapterVersion), name);
        Context.current().heartbeat({ message: `loading ${name} on ${serving().label}` });
        await serving().loadAdapter({ name, path: dir, base: input.baseModel });
        return { label: `${model}@${adapterVersion}`, servedModel: name, upstream: input.upstream, adapter: { model, version: adapterVersion } };
      });
    },

    /** Control queue: unload a version's adapter from every replica, then delete its unpacked files. Idempotent. */
    async unloadVersion(input: { servedModel: string }): Promise<void> {
      return asActivityFailure(async () => {
        await serving().unloadAdapter(input.servedModel);
        await rm(path.join(servingDir(), input.servedModel), { recursive: true, force: true });
      });
    },

    /** Control queue: an alias's route as the gateway has it now (undefined: no route yet). */
    async readRoute(input: { alias: string }): Promise<{ tableVersion: number; targets?: RouteTargets }> {
      return asActivityFailure(async () => {
        const table = await router().getTable();
        const route = table.routes[input.alias];
        return { tableVersion: table.version, ...(route ? { targets: route.targets } : {}) };
      });
    },

    /**
     * Control queue: set an alias's traffic weights by compare-and-swap on the table's version.
     * Already as asked: nothing is written (a retry after a crash is a no-op). A concurrent change
     * fails this attempt and the retry re-reads.
     */
    async setTrafficWeights(input: { alias: string; targets: RouteTargets; by: string; reason: string }): Promise<{ tableVersion: number }> {
      return asActivityFailure(async () => {
        const table = await router().getTable();
        if (sameTargets(table.routes[input.alias]?.targets, input.targets)) return { tableVersion: table.version };
        const next = await router().setRoute(input.alias, input.targets, { expectedVersion: table.version, by: input.by, reason: input.reason });
        return { tableVersion: next.version };
      });
    },

    /** Control queue: stable's and candidate's request metrics over a window, for the canary analysis. */
    async fetchCanaryMetrics(input: { alias: string; versions: string[]; from: number; to: number; maxSamples?: number }): Promise<VersionMetrics[]> {
      return asActivityFailure(async () => {
        const all = await router().metrics(input.alias, { from: input.from, to: input.to });
        const max = input.maxSamples ?? 2_000;
        return input.versions.map((version) => {
          const m = all.find((x) => x.version === version);
          const empty: VersionMetrics = { version, requests: 0, errors: 0, latencyMs: [], feedback: [], promptTokens: 0, completionTokens: 0 };
          return m ? { ...m, latencyMs: thin(m.latencyMs, max), feedback: thin(m.feedback, max) } : empty;
        });
      });
    },

    /**
     * Control queue: point `production` at this release's versions (the registry moves `previous`
     * to what it replaced). Idempotent per workflow run.
     */
    async promoteProduction(input: { releaseId: string; model: string; versions: AliasVersions; by: string; reason: string; at: string }): Promise<{ replaced?: AliasVersions }> {
      return asActivityFailure(async () => {
        const runId = Context.current().info.workflowExecution?.runId ?? 'run';
        const record = await deps.registry.moveAlias(input.model, 'production', {
          versions: input.versions,
          releaseWorkflowId: input.releaseId,
          by: input.by,
          reason: input.reason,
          at: input.at,
          moveId: `${safeId(input.releaseId)}-${runId}-production`,
        });
        return record.replaced ? { replaced: record.replaced.versions } : {};
      });
    },

    /**
     * Control queue: undo this release's promotion: if `production` still points at its versions,
     * move it back to what it replaced. Anything else (never promoted, or a later release has
     * production now) is left alone. Idempotent.
     */
    async restoreProduction(input: { releaseId: string; model: string; versions: AliasVersions; by: string; reason: string; at: string }): Promise<{ restored: boolean }> {
      return asActivityFailure(async () => {
        const current = await deps.registry.getAlias(input.model, 'production');
        if (!current || current.releaseWorkflowId !== input.releaseId || !current.replaced) return { restored: false };
        const runId = Context.current().info.workflowExecution?.runId ?? 'run';
        await deps.registry.moveAlias(input.model, 'production', {
          versions: current.replaced.versions,
          ...(current.replaced.releaseWorkflowId ? { releaseWorkflowId: current.replaced.releaseWorkflowId } : {}),
          by: input.by,
          reason: `rollback of ${input.releaseId}: ${input.reason}`,
          at: input.at,
          moveId: `${safeId(input.releaseId)}-${runId}-rollback`,
          expectedVersions: input.versions,
        });
        return { restored: true };
      });
    },
  };
}

function notConfigured(what: string): never {
  throw ApplicationFailure.nonRetryable(`this control worker has no ${what}: configure it to run releases with spec.serving`, ErrorType.ServingNotConfigured);
}
