/**
 * GPU admission at validation (issue 13): with a quota file configured (`deps.quotaFile`), a
 * lifecycle's validated spec carries its team's admission plan (src/contracts/gpu-admission.ts);
 * without one, nothing changes. A team with no quota on the spec's pool is refused here, at once
 * and non-retryably, naming the team, the pool and the quota file.
 */
import type { GpuAdmissionPlan } from '../../src/contracts/gpu-admission';
import { ErrorType } from '../../src/contracts/errors';
import { poolQuotas, temporalPriority } from '../../src/contracts/quota';
import { loadQuotaFile } from '../../src/fleet/quota-file';
import { ForgelineError } from '../../src/ports/errors';
import type { ActivityDeps } from '../deps';

/** The admission plan of `team` on `pool`, or undefined when no quota file is configured. */
export async function gpuAdmissionPlan(deps: Pick<ActivityDeps, 'quotaFile'>, team: string, pool: string): Promise<GpuAdmissionPlan | undefined> {
  const quotaFile = deps.quotaFile;
  if (!quotaFile) return undefined;
  const file = await loadQuotaFile(quotaFile);
  if (!file.pools[pool]) {
    throw new ForgelineError(ErrorType.InvalidSpec, `pool ${pool} is not in the quota file ${quotaFile} (pools: ${Object.keys(file.pools).join(', ')}): add it under pools, or run on one of those`, true);
  }
  const quotas = poolQuotas(file, pool);
  if (!quotas.teams[team]) {
    const known = Object.keys(quotas.teams);
    throw new ForgelineError(
      ErrorType.InvalidSpec,
      `team ${team} has no quota on pool ${pool} in the quota file ${quotaFile} (teams with one: ${known.length ? known.join(', ') : 'none'}): ` +
        `set the spec's team to one of them, or add teams.${team}.quotas.${pool} to the file`,
      true,
    );
  }
  return { quotaFile, team, pool, priority: temporalPriority(quotas, team) };
}
