/** Builds the configured Tracker adapter. Called by worker entries and scripts, never by activities. */
import { ConfigError } from '../ports/errors';
import type { Tracker } from '../ports/tracker';
import { LocalTracker } from './local-tracker';
import type { TrackerLogger } from './tracker-common';
import { WandbTracker } from './wandb-tracker';

export type { TrackerLogger } from './tracker-common';

export interface CreateTrackerOptions {
  kind: 'local' | 'wandb';
  /** FORGELINE_HOME: the local tracker writes under `<home>/runs`. */
  home: string;
  wandb?: {
    apiKey?: string;
    baseUrl?: string;
    entity?: string;
    /** W&B project for runs opened without one. */
    project?: string;
  };
  logger?: TrackerLogger;
}

export function createTracker(options: CreateTrackerOptions): Tracker {
  switch (options.kind) {
    case 'local':
      return new LocalTracker({ home: options.home, ...(options.logger && { logger: options.logger }) });
    case 'wandb': {
      const wandb = options.wandb ?? {};
      if (!wandb.apiKey) {
        throw new ConfigError('WANDB_API_KEY is required when FORGELINE_TRACKER=wandb: set it, or use FORGELINE_TRACKER=local.');
      }
      return new WandbTracker({
        apiKey: wandb.apiKey,
        ...(wandb.baseUrl && { baseUrl: wandb.baseUrl }),
        ...(wandb.entity && { entity: wandb.entity }),
        ...(wandb.project && { project: wandb.project }),
        ...(options.logger && { logger: options.logger }),
      });
    }
    default: {
      const kind: never = options.kind;
      throw new ConfigError(`unknown tracker kind ${JSON.stringify(kind)}: expected local or wandb (FORGELINE_TRACKER)`);
    }
  }
}
