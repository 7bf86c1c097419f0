import { defaultPayloadConverter, type WorkflowHandle } from '@temporalio/client';
import type { ReleaseStatus } from '../contracts/release-lifecycle';
import type { Log } from './stack';

/** What the GPU activities put in their heartbeats (see activities/release.ts). */
export interface StageHeartbeat {
  stage?: string;
  step?: number;
  totalSteps?: number;
  loss?: number;
  checkpoint?: { step: number; prefix: string };
  message?: string;
}

/** Latest heartbeat of the release's running activity, decoded; undefined when none runs. */
export async function currentHeartbeat(handle: WorkflowHandle): Promise<{ activity: string; attempt: number; beat?: StageHeartbeat } | undefined> {
  const { raw } = await handle.describe();
  const pending = raw.pendingActivities?.[0];
  if (!pending) return undefined;
  const payload = pending.heartbeatDetails?.payloads?.[0];
  const beat = payload ? (defaultPayloadConverter.fromPayload(payload) as StageHeartbeat) : undefined;
  return { activity: pending.activityType?.name ?? '?', attempt: pending.attempt ?? 1, beat };
}

/**
 * Print live progress of a release until it ends: stage changes, training step and loss from the
 * heartbeats, retries. Polls every `intervalMs`; returns when the workflow has closed.
 */
export async function watchRelease(handle: WorkflowHandle, log: Log, intervalMs = 1000): Promise<void> {
  let last = '';
  for (;;) {
    const desc = await handle.describe();
    if (desc.status.name !== 'RUNNING') return;
    let line: string;
    try {
      const status = (await handle.query('status')) as ReleaseStatus;
      const hb = await currentHeartbeat(handle);
      const beat = hb?.beat;
      const progress = beat?.step !== undefined && beat.totalSteps
        ? ` step ${beat.step}/${beat.totalSteps}${beat.loss !== undefined ? ` loss ${beat.loss.toFixed(4)}` : ''}${beat.checkpoint ? ` (checkpoint @${beat.checkpoint.step})` : ''}`
        : beat?.message ? ` ${beat.message}` : '';
      const retry = hb && hb.attempt > 1 ? ` [attempt ${hb.attempt}]` : '';
      line = `  [${status.stage}]${progress}${retry}${status.awaitingApproval ? ' awaiting approval (forgeline release approve)' : ''}`;
    } catch {
      line = '  [starting]';
    }
    if (line !== last) log(line);
    last = line;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
