import { ApplicationFailure } from '@temporalio/workflow';
import { ErrorType } from '../../src/contracts/errors';
import { ReembedStage, type ChunkManifestRef, type PreparedVersion, type ReembedSpec, type ValidationReport } from '../../src/contracts/reembed-spec';
import { control, pool } from './activities';
import type { ReembedState } from './state';

/**
 * Stage validate-index: seal the version (see PreparedVersion.sealAfterFill), then counts, the labelled queries' recall@k and MRR, and overlap@k with the
 * previous version, against the spec's gate. A failure ends the re-embed (ValidationFailed) with
 * the alias where it was; the new version is kept for inspection (a re-run into it resumes).
 */
export async function validateIndex(state: ReembedState, spec: ReembedSpec, manifest: ChunkManifestRef, prepared: PreparedVersion): Promise<ValidationReport> {
  state.setStage(ReembedStage.ValidateIndex);
  // The version is full: a store that builds its index once over all rows does it now, before the
  // labelled queries run against it (decided by prepare's recorded result, so replays agree).
  if (prepared.sealAfterFill) await control.sealIndexVersion({ index: spec.store.index, version: prepared.version });
  if (manifest.queries > 0) await pool(spec).embedQueries({ prefix: manifest.prefix, model: spec.embedding.model });
  const report = await control.validateIndexVersion({ spec, manifest, prepared });
  state.progress.validation = report;
  state.publish();
  if (!report.passed) {
    throw ApplicationFailure.nonRetryable(
      `validation of ${spec.store.index}/${prepared.version} failed, alias ${spec.store.alias} left on ${prepared.aliasAt ?? '(nothing)'}: ${report.failures.join('; ')}`,
      ErrorType.ValidationFailed,
      report,
    );
  }
  return report;
}
