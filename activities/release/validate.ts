import type { ReleaseSpec } from '../../src/contracts/release-spec';
import { ReleaseSpecSchema } from '../../src/contracts/specs/release-spec';
import { parseSpecOrFail } from '../errors';

export function createValidateActivities() {
  return {
    /** Control queue: the CLI's validation again, for releases started by hand in the UI. */
    async validateReleaseSpec(raw: unknown): Promise<ReleaseSpec> {
      return parseSpecOrFail(ReleaseSpecSchema, raw, 'release spec') as ReleaseSpec;
    },
  };
}
