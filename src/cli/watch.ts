import { defaultPayloadConverter, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import type { ReleaseStatus, StageHeartbeat } from '../contracts/release-lifecycle';
import type { Progress, ReleaseView } from './output';

export interface RunningActivity {
  activity: string;
  attempt: number;
  beat?: StageHeartbeat;
}

/** The running activity of a described release and its latest heartbeat, decoded; undefined when none runs. */
export function heartbeatOf(desc: WorkflowExecutionDescription): RunningActivity | undefined {
  const pending = desc.raw.pendingActivities?.[0];
  if (!pending) return undefined;
  const payload = pending.heartbeatDetails?.payloads?.[0];
  const beat = payload ? (defaultPayloadConverter.fromPayload(payload) as StageHeartbeat) : undefined;
  return { activity: pending.activityType?.name ?? '?', attempt: pending.attempt ?? 1, beat };
}

/** Latest heartbeat of the release's running activity, decoded; undefined when none runs. */
export async function currentHeartbeat(handle: WorkflowHandle): Promise<RunningActivity | undefined> {
  return heartbeatOf(await handle.describe());
}

/** What `watch` shows, from the status query and the running activity's heartbeat. */
export function releaseView(workflowId: string, status: ReleaseStatus, running?: RunningActivity): ReleaseView {
  return {
    workflowId,
    stage: status.stage,
    awaitingApproval: status.awaitingApproval,
    approvalDeadline: status.approvalDeadline,
    attempt: running?.attempt,
    beat: running?.beat,
  };
}

/**
 * Show live progress of a release until it ends: stage, training step, loss and the newest
 * checkpoint from the heartbeats, retries, what it waits for. Polls every `intervalMs`; returns
 * when the workflow has closed.
 */
export async function watchRelease(handle: WorkflowHandle, progress: Progress, intervalMs = 1000): Promise<void> {
  try {
    for (;;) {
      const desc = await handle.describe();
      if (desc.status.name !== 'RUNNING') return;
      let view: ReleaseView;
      try {
        view = releaseView(handle.workflowId, await handle.query<ReleaseStatus>('status'), heartbeatOf(desc));
      } catch {
        view = { workflowId: handle.workflowId, stage: 'starting' }; // no workflow task has run yet
      }
      progress.update(view);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  } finally {
    progress.stop();
  }
}
