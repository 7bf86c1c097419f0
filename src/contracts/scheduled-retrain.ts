/**
 * Scheduled retraining: a model release on the newest published snapshot of a dataset, started
 * by a Schedule (`forgeline schedule apply`, workflow `scheduledRetrainWorkflow`). The schedule
 * holds a release spec without a dataset and a prefix under which dataset snapshots are published
 * (`artifact://datasets/support-bot/` holding `2026-12-01/`, `2026-12-08/`, ... each with its
 * MANIFEST.json); each run resolves the newest one (by manifest creation time) and starts
 * `modelReleaseWorkflow` on it. Plain types and pure functions (the zod schema is in
 * src/schedules/retrain-spec.ts).
 */
import type { ReleaseSpec } from './release-spec';

export interface ScheduledRetrainSpec {
  /** The release spec to start, without `dataset` (it is resolved at run time). */
  release: Omit<ReleaseSpec, 'dataset'>;
  /** Where dataset snapshots are published: `artifact://<prefix>/`, each snapshot a published directory below it. */
  dataset: { latest: string };
}

export interface ResolvedDataset {
  uri: string;
  sha256: string;
  createdAt: string;
}

export interface ScheduledRetrainResult {
  dataset: ResolvedDataset;
  /** The release's workflow ID: one per model and dataset snapshot. */
  releaseId: string;
  /** False when that snapshot's release was already started (running or done): a snapshot is trained once. */
  started: boolean;
}

/** `release/<model>/dataset-<digest prefix>`: a snapshot is trained once, however often the schedule fires. */
export function scheduledReleaseId(model: string, datasetSha256: string): string {
  return `release/${model}/dataset-${datasetSha256.slice(0, 12)}`;
}
