import type { ArtifactStore } from '../src/ports/artifact-store';
import type { Tracker } from '../src/ports/tracker';

/** What activities may touch: ports and a few facts about the worker. Built by worker entries. */
export interface ActivityDeps {
  artifacts: ArtifactStore;
  tracker: Tracker;
  /** Tracker project for lifecycle runs. */
  trackerProject: string;
  /** Identity of the worker running the activity (for audit and the stack check). */
  workerIdentity: string;
  /** GPU pool this worker serves, e.g. `cpu`. */
  pool: string;
}
