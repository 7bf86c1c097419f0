import type { PromptAlias, PromptSpec } from '../../src/contracts/prompt';
import { PromptRegistry, type PromptAliasRecord } from '../../src/registry/prompt-registry';
import type { ActivityDeps } from '../deps';
import { asActivityFailure } from '../errors';

/** What a release reads of an alias: its version and, for `production`, the prompt (the evaluation's baseline). */
export interface PromptAliasView {
  version: string;
  moveId: string;
  spec: PromptSpec;
}

/**
 * Control queue: the prompt registry's writes, each idempotent on retry. Publishing the same
 * content returns the same version; an alias move carries a move ID derived from the workflow
 * (stable across retries), so a retried move that landed is recognized as done, and its
 * compare-and-swap precondition (the version the release saw) refuses a move that would
 * overwrite someone else's. The registry is a thin layer over the ArtifactStore port.
 */
export function createPromptRegistryActivities(deps: Pick<ActivityDeps, 'artifacts'>) {
  const registry = new PromptRegistry(deps.artifacts);
  return {
    /** Publish the prompt as an immutable version (same content: the version first published). */
    async publishPromptVersion(input: { releaseId: string; prompt: PromptSpec; at: string; git?: { repo: string; sha: string } }): Promise<{ version: string; ref: string; createdAt: string }> {
      const record = await asActivityFailure(() =>
        registry.publish({ prompt: input.prompt, createdAt: input.at, source: { releaseWorkflowId: input.releaseId, ...(input.git ? { repo: input.git.repo, sha: input.git.sha } : {}) } }),
      );
      return { version: record.version, ref: record.ref, createdAt: record.createdAt };
    },

    /** Where `candidate` and `production` point now (the release's compare-and-swap preconditions). */
    async readPromptAliases(input: { name: string }): Promise<{ candidate?: PromptAliasView; production?: PromptAliasView }> {
      return asActivityFailure(async () => {
        const out: { candidate?: PromptAliasView; production?: PromptAliasView } = {};
        for (const alias of ['candidate', 'production'] as const) {
          const a = await registry.getAlias(input.name, alias);
          if (!a) continue;
          const v = await registry.getVersion(input.name, a.version);
          if (v) out[alias] = { version: a.version, moveId: a.moveId, spec: v.prompt };
        }
        return out;
      });
    },

    /** The prompt of a published version (routing needs its template, variables and model binding). */
    async readPromptVersion(input: { name: string; version: string }): Promise<PromptSpec> {
      return asActivityFailure(async () => (await registry.resolve(input.name, input.version)).prompt);
    },

    /**
     * Move an alias by compare-and-swap: `expectedVersion` is what the release saw (null: the alias
     * must not exist yet). A conflict is terminal (RegistryConflict) and changes nothing.
     */
    async movePromptAlias(input: {
      name: string;
      alias: PromptAlias;
      version: string;
      expectedVersion: string | null;
      by: string;
      reason: string;
      at: string;
      moveId: string;
      releaseWorkflowId: string;
    }): Promise<Pick<PromptAliasRecord, 'alias' | 'version' | 'movedAt' | 'moveId' | 'replaced'>> {
      const { name, alias, ...move } = input;
      const r = await asActivityFailure(() => registry.moveAlias(name, alias, move));
      return { alias: r.alias, version: r.version, movedAt: r.movedAt, moveId: r.moveId, ...(r.replaced ? { replaced: r.replaced } : {}) };
    },
  };
}
