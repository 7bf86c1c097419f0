import type { AliasRecord } from '../../src/ports/vector-store';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';
import { requireStore } from './common';

export function createAliasActivities(deps: ActivityDeps) {
  return {
    /**
     * Control queue: point the alias at the new version if it still points at the version read
     * when the re-embed began (compare-and-swap); AliasConflict (terminal) if someone moved it meanwhile.
     */
    async swapIndexAlias(input: { index: string; alias: string; version: string; expected: string | null }): Promise<AliasRecord> {
      return asActivityFailure(() => requireStore(deps).swapAlias(input.index, input.alias, input.version, input.expected));
    },

    /** Control queue: drop a retired version (what is gone already succeeds; one an alias points at is refused). */
    async dropIndexVersion(input: { index: string; version: string }): Promise<void> {
      return asActivityFailure(() => requireStore(deps).dropVersion(input.index, input.version));
    },
  };
}
