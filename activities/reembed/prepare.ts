import { Context } from '@temporalio/activity';
import { ErrorType } from '../../src/contracts/errors';
import { EMBEDDING_MODELS, type PreparedVersion, type ReembedSpec } from '../../src/contracts/reembed-spec';
import { ReembedSpecSchema } from '../../src/contracts/specs/reembed-spec';
import { ForgelineError } from '../../src/ports/errors';
import { gpuAdmissionPlan } from '../admission/plan';
import type { ActivityDeps } from '../deps';
import { asActivityFailure, parseSpecOrFail } from '../errors';
import { requireStore } from './common';

export function createPrepareActivities(deps: ActivityDeps) {
  return {
    /** Control queue: the CLI's validation again, for re-embeds started by hand in the UI or by a schedule. */
    async validateReembedSpec(raw: unknown): Promise<ReembedSpec> {
      const spec = parseSpecOrFail(ReembedSpecSchema, raw, 'reembed spec') as ReembedSpec;
      // With a quota file: the team's quota on the pool, and its admission plan for the embed stage.
      const admission = await asActivityFailure(() => gpuAdmissionPlan(deps, spec.team, spec.pool));
      return admission ? { ...spec, admission } : spec;
    },

    /**
     * Control queue: read where the alias points (the previous version) and create the new
     * version. Idempotent (a retry, or a resumed run, finds the version made). A version that
     * exists with another width or metric is refused (VectorStoreRejected, terminal) and left as it is.
     */
    /**
     * Control queue: the version is filled; build its search index where the store defers that to
     * here (see VersionSpec.deferIndex). Idempotent. Heartbeats while the store builds (pgvector on
     * PostgreSQL: about 45 s per 100k 384-d rows with two workers), so a lost worker is noticed.
     */
    async sealIndexVersion(input: { index: string; version: string }): Promise<void> {
      return asActivityFailure(async () => {
        const store = requireStore(deps);
        const ctx = Context.current();
        ctx.heartbeat({ sealing: `${input.index}/${input.version}` });
        const beat = setInterval(() => ctx.heartbeat({ sealing: `${input.index}/${input.version}` }), 10_000);
        try {
          await store.sealVersion?.(input.index, input.version);
        } finally {
          clearInterval(beat);
        }
      });
    },

    async prepareIndexVersion(input: { spec: ReembedSpec; version: string }): Promise<PreparedVersion> {
      return asActivityFailure(async () => {
        const store = requireStore(deps);
        const { index, alias, metric } = input.spec.store;
        const dimensions = EMBEDDING_MODELS[input.spec.embedding.model].dimensions;
        const versions = await store.listVersions(index);
        const existing = versions.find((v) => v.version === input.version);
        if (existing && (existing.dimensions !== dimensions || existing.metric !== metric)) {
          throw new ForgelineError(
            ErrorType.VectorStoreRejected,
            `${store.label}: index ${index} version ${input.version} exists with ${existing.dimensions} dimensions (${existing.metric}), but ${input.spec.embedding.model} makes ${dimensions} (${metric}); ` +
              'name another version (store.version) or drop that one; nothing was written',
            true,
          );
        }
        const pointer = await store.getAlias(index, alias);
        let previous: PreparedVersion['previous'] = null;
        if (pointer && pointer.version !== input.version) {
          const info = versions.find((v) => v.version === pointer.version);
          if (info) {
            previous = {
              version: info.version,
              dimensions: info.dimensions,
              count: await store.count(index, info.version),
              compatible: info.dimensions === dimensions && info.metric === metric,
            };
          }
        }
        // Filled first, sealed after (sealIndexVersion): a store that builds its index faster over
        // all rows (pgvector on PostgreSQL) does so then. The workflow seals only when told to here.
        const seal = typeof store.sealVersion === 'function';
        await store.createVersion(index, input.version, { dimensions, metric, ...(seal ? { deferIndex: true } : {}) });
        return { version: input.version, dimensions, previous, aliasAt: pointer?.version ?? null, store: store.label, ...(seal ? { sealAfterFill: true } : {}) };
      });
    },
  };
}
