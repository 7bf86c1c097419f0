import { ApplicationFailure } from '@temporalio/activity';
import { ErrorType } from '../../src/contracts/errors';
import type { ResolvedDataset, ScheduledRetrainSpec } from '../../src/contracts/scheduled-retrain';
import { ScheduledRetrainSpecSchema } from '../../src/schedules/retrain-spec';
import type { ActivityDeps } from '../deps';
import { asActivityFailure, parseSpecOrFail } from '../errors';

const MANIFEST = 'MANIFEST.json';

/** Control queue: the scheduled retraining's activities. */
export function createScheduledRetrainActivities(deps: ActivityDeps) {
  return {
    async validateScheduledRetrainSpec(raw: unknown): Promise<ScheduledRetrainSpec> {
      return parseSpecOrFail(ScheduledRetrainSpecSchema, raw, 'scheduled retrain spec') as ScheduledRetrainSpec;
    },

    /**
     * The newest dataset snapshot published directly under `latest` (`<prefix><snapshot>/MANIFEST.json`),
     * by its manifest's creation time (ties: the greater name). None: a terminal error naming the prefix.
     */
    async resolveLatestDataset(input: { latest: string }): Promise<ResolvedDataset> {
      return asActivityFailure(async () => {
        const prefix = input.latest.slice('artifact://'.length);
        let best: { name: string; createdAt: string; digest: string } | undefined;
        for await (const o of deps.artifacts.listAll(prefix)) {
          const rest = o.key.slice(prefix.length);
          const parts = rest.split('/');
          if (parts.length !== 2 || parts[1] !== MANIFEST) continue;
          const m = await deps.artifacts.readManifest(prefix + parts[0] + '/');
          if (!m) continue;
          if (!best || m.createdAt > best.createdAt || (m.createdAt === best.createdAt && parts[0]! > best.name)) best = { name: parts[0]!, createdAt: m.createdAt, digest: m.digest };
        }
        if (!best) throw ApplicationFailure.nonRetryable(`dataset.latest: no published dataset snapshot under ${input.latest} in ${deps.artifacts.rootUri} (expected <prefix><snapshot>/${MANIFEST}); publish one first`, ErrorType.InvalidSpec);
        return { uri: `artifact://${prefix}${best.name}/`, sha256: best.digest, createdAt: best.createdAt };
      });
    },
  };
}
