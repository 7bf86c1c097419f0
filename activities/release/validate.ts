import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { ReleaseSpecSchema } from '../../src/contracts/specs/release-spec';
import { gpuAdmissionPlan } from '../admission/plan';
import type { ActivityDeps } from '../deps';
import { asActivityFailure, parseSpecOrFail } from '../errors';

export function createValidateActivities(deps: Pick<ActivityDeps, 'quotaFile'> = {}) {
  return {
    /**
     * Control queue: the CLI's validation again, for releases started by hand in the UI; with a
     * quota file, also the team's quota on the pool (the spec then carries its `admission` plan).
     */
    async validateReleaseSpec(raw: unknown): Promise<ReleaseSpec> {
      const spec = parseSpecOrFail(ReleaseSpecSchema, raw, 'release spec') as ReleaseSpec;
      const admission = await asActivityFailure(() => gpuAdmissionPlan(deps, spec.team, spec.gpu.pool));
      return admission ? { ...spec, admission } : spec;
    },
  };
}
