import { log, ParentClosePolicy, proxyActivities, startChild, upsertSearchAttributes, WorkflowIdReusePolicy } from '@temporalio/workflow';
import type { createScheduledRetrainActivities } from '../activities/schedules/retrain';
import { ErrorType } from '../src/contracts/errors';
import { scheduledReleaseId, type ScheduledRetrainResult } from '../src/contracts/scheduled-retrain';
import { ForgelineLifecycle, ForgelineModel, Lifecycle } from '../src/contracts/search-attributes';

const act = proxyActivities<ReturnType<typeof createScheduledRetrainActivities>>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: [ErrorType.InvalidSpec] },
});

/**
 * Scheduled retraining (a Schedule's action): resolve the newest published snapshot under
 * `dataset.latest`, then start `modelReleaseWorkflow` on it as `release/<model>/dataset-<digest>`,
 * abandoned (the release outlives this run, with its own approval and canary). A snapshot already
 * trained (that release running or done) is not trained again; a failed one may be retried.
 */
export async function scheduledRetrainWorkflow(rawSpec: unknown): Promise<ScheduledRetrainResult> {
  upsertSearchAttributes([{ key: ForgelineLifecycle, value: Lifecycle.ScheduledRetrain }]);
  const spec = await act.validateScheduledRetrainSpec(rawSpec);
  upsertSearchAttributes([{ key: ForgelineModel, value: spec.release.model }]);
  const dataset = await act.resolveLatestDataset(spec.dataset);
  const releaseId = scheduledReleaseId(spec.release.model, dataset.sha256);
  try {
    await startChild('modelReleaseWorkflow', {
      workflowId: releaseId,
      args: [{ ...spec.release, dataset: { uri: dataset.uri, sha256: dataset.sha256 } }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      staticSummary: `scheduled retraining of ${spec.release.model} on ${dataset.uri}`.slice(0, 200),
    });
  } catch (err) {
    if ((err as Error)?.name !== 'WorkflowExecutionAlreadyStartedError') throw err;
    log.info(`dataset ${dataset.uri} (${dataset.sha256.slice(0, 12)}) was already trained by ${releaseId}: no new release`);
    return { dataset, releaseId, started: false };
  }
  return { dataset, releaseId, started: true };
}
