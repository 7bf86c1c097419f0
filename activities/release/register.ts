import { Context } from '@temporalio/activity';
import type { ReleaseSpec } from '../../src/contracts/release-spec';
import type { ArtifactKind } from '../../src/registry/model-registry';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';
import { safeId } from './run-recipe';
import type { EvalResult, PublishedRef, QuantizeResult, TrainResult } from './types';

/**
 * When an audit record happened: the workflow time passed in (so a retried activity writes the
 * same record), else the time the activity was scheduled (also the same on every attempt).
 */
function auditTime(at: string | undefined): string {
  return at ?? new Date(Context.current().info.scheduledTimestampMs).toISOString();
}

export function createRegisterActivities(deps: ActivityDeps) {
  const { registry } = deps;
  return {
    /** Control queue: register every artifact of the release as an immutable version with lineage. */
    async registerRelease(input: {
      releaseId: string;
      spec: ReleaseSpec;
      trained: TrainResult;
      quantized: QuantizeResult;
      report: EvalResult;
      gatesPassed: boolean;
      /** Workflow time of the registration (ISO 8601). */
      at?: string;
    }): Promise<{ versions: Partial<Record<ArtifactKind, string>>; uris?: Partial<Record<ArtifactKind, string>> }> {
      return asActivityFailure(async () => {
        const { spec, releaseId } = input;
        const createdAt = auditTime(input.at);
        const lineage = {
          baseModel: 'path' in spec.base ? { ref: `path:${spec.base.path}` } : { ref: spec.base.ref },
          datasetSha256: spec.dataset.sha256,
          recipe: spec.trainer.recipe,
          hyperparameters: { ...spec.trainer, quantization: spec.quantization },
          ...(spec.git.sha ? { gitSha: spec.git.sha } : {}),
          releaseWorkflowId: releaseId,
          metrics: input.report.summary,
        };
        const versions: Partial<Record<ArtifactKind, string>> = {};
        const uris: Partial<Record<ArtifactKind, string>> = {};
        const reg = async (kind: ArtifactKind, ref: PublishedRef | undefined) => {
          if (!ref) return;
          const v = await registry.registerVersion({ model: spec.model, kind, prefix: ref.prefix, lineage: { ...lineage, parents: { ...versions } }, createdAt });
          versions[kind] = v.version;
          uris[kind] = ref.uri;
        };
        await reg('adapter', input.trained.adapter);
        await reg('merged', input.quantized.merged);
        await reg('quantized', input.quantized.quantized);
        await reg('eval-report', input.report.report);
        return { versions, uris };
      });
    },

    /** Control queue: point the `candidate` alias at this release, recording who, when and why. */
    async promoteCandidate(input: {
      releaseId: string;
      model: string;
      versions: Partial<Record<ArtifactKind, string>>;
      by: string;
      reason: string;
      /** Workflow time of the decision (ISO 8601). */
      at?: string;
    }): Promise<void> {
      return asActivityFailure(async () => {
        const info = Context.current().info;
        await registry.moveAlias(input.model, 'candidate', {
          versions: input.versions,
          releaseWorkflowId: input.releaseId,
          by: input.by,
          reason: input.reason,
          at: auditTime(input.at),
          // Unique per run: a failed release started again for the same sha makes its own move.
          moveId: `${safeId(input.releaseId)}-${info.workflowExecution?.runId ?? 'run'}-${info.activityId}`,
        });
      });
    },
  };
}
