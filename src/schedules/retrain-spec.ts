import { z } from 'zod';
import type { ReleaseSpec } from '../contracts/release-spec';
import { ReleaseSpecSchema } from '../contracts/specs/release-spec';

/** Stands in for the dataset while the rest of the release spec is validated (it is resolved at run time). */
const PLACEHOLDER_DATASET = { uri: 'artifact://resolved-at-run-time/', sha256: '0'.repeat(64) };

/** The input of `scheduledRetrainWorkflow`, validated at apply time and again by its first activity. */
export const ScheduledRetrainSpecSchema = z.strictObject({
  release: z.record(z.string(), z.unknown(), { error: 'expected the release spec (without dataset) as a mapping' }).transform((r, ctx): Omit<ReleaseSpec, 'dataset'> => {
    if ('dataset' in r) {
      ctx.addIssue({ code: 'custom', path: ['dataset'], message: 'leave dataset out: the newest snapshot under dataset.latest is used at each run' });
      return z.NEVER;
    }
    const parsed = ReleaseSpecSchema.safeParse({ ...r, dataset: PLACEHOLDER_DATASET });
    if (!parsed.success) {
      for (const i of parsed.error.issues) ctx.addIssue({ code: 'custom', path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)), message: i.message });
      return z.NEVER;
    }
    const { dataset: _dataset, ...rest } = parsed.data as ReleaseSpec;
    return rest;
  }),
  dataset: z.strictObject({
    latest: z.string().regex(/^artifact:\/\/[^/].*\/$/, 'expected artifact://<prefix>/: the prefix under which dataset snapshots are published, ending in /'),
  }),
});
export type ScheduledRetrainSpecInput = z.input<typeof ScheduledRetrainSpecSchema>;
