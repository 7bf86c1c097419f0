import {
  ApplicationFailure,
  defineQuery,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { ErrorType } from '../src/contracts/errors';
import { ForgelineLifecycle, ForgelineOutcome, ForgelineStage, Lifecycle, Outcome } from '../src/contracts/search-attributes';
import { DEFAULT_STACK_CHECK_TIMEOUT, type StackCheckResult, type StackCheckSpec } from '../src/contracts/stack-check';
import { gpuTaskQueue } from '../src/contracts/task-queues';

const DEFAULT_PAYLOAD_BYTES = 1 << 20;

export interface StackCheckStatus {
  stage: 'validate' | 'probe' | 'done' | 'failed';
  pool?: string;
  workerIdentity?: string;
}

export const stackCheckStatusQuery = defineQuery<StackCheckStatus>('stackCheckStatus');

const control = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: [ErrorType.InvalidSpec] },
});

/**
 * Proves the stack end to end: the control queue validates the spec, the GPU pool's queue
 * writes and reads an artifact and logs metrics. No GPU worker for the pool: the probe times
 * out after `spec.timeout` (default 10m) with a message that names the queue.
 */
export async function stackCheckWorkflow(rawSpec: StackCheckSpec): Promise<StackCheckResult> {
  const status: StackCheckStatus = { stage: 'validate' };
  setHandler(stackCheckStatusQuery, () => status);
  upsertSearchAttributes([
    { key: ForgelineStage, value: status.stage },
    { key: ForgelineOutcome, value: Outcome.Running },
    { key: ForgelineLifecycle, value: Lifecycle.StackCheck },
  ]);

  const spec = await control.validateStackCheckSpec(rawSpec);
  const { workflowId, startTime } = workflowInfo();
  const queue = gpuTaskQueue(spec.pool);
  status.stage = 'probe';
  status.pool = spec.pool;
  upsertSearchAttributes([{ key: ForgelineStage, value: status.stage }]);

  const timeout = spec.timeout ?? DEFAULT_STACK_CHECK_TIMEOUT;
  const gpu = proxyActivities<Activities>({ taskQueue: queue, scheduleToCloseTimeout: timeout });
  try {
    // executeWithOptions takes the whole option set; it is here for the UI summary sentence.
    const probe = await gpu.runStackProbe.executeWithOptions(
      {
        taskQueue: queue,
        scheduleToCloseTimeout: timeout,
        summary: `Write and read back a ${spec.payloadBytes ?? DEFAULT_PAYLOAD_BYTES}-byte artifact on ${queue} and log its timings`,
      },
      [{ checkId: workflowId, pool: spec.pool, payloadBytes: spec.payloadBytes ?? DEFAULT_PAYLOAD_BYTES, note: spec.note }],
    );
    status.stage = 'done';
    status.workerIdentity = probe.workerIdentity;
    upsertSearchAttributes([
      { key: ForgelineStage, value: status.stage },
      { key: ForgelineOutcome, value: Outcome.Succeeded },
    ]);
    return { checkId: workflowId, probe, elapsedMs: Date.now() - startTime.getTime() };
  } catch (err) {
    status.stage = 'failed';
    upsertSearchAttributes([
      { key: ForgelineStage, value: status.stage },
      { key: ForgelineOutcome, value: Outcome.Failed },
    ]);
    throw ApplicationFailure.create({
      message: `stack check failed on task queue ${queue}: is a GPU worker for pool '${spec.pool}' running?`,
      type: ErrorType.StackCheckFailed,
      nonRetryable: true,
      cause: err instanceof Error ? err : undefined,
    });
  }
}
