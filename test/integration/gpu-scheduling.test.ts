/**
 * Scheduling by free GPUs on a real Temporal dev server: GPU workers with fake GPU counts (on
 * CPU), each with the slot supplier production workers use (workers/build.ts gpuWorkerTuner),
 * running a fake GPU job that leases its GPUs from the same allocator and holds them until the
 * test lets go.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker } from '@temporalio/worker';
import { LocalGpuAllocator } from '../../src/adapters/gpu-allocator';
import { gpuWorkerTuner } from '../../workers/build';
import type { GpuJobActivities } from '../fixtures/workflows/gpu-jobs';
import { getLocalEnv, isolate } from '../helpers/temporal';
import { until } from '../helpers/until';

describe('GPU workers schedule by free GPUs (real Temporal dev server, fake GPU counts)', function () {
  this.timeout(90_000);

  it('an 8-GPU job on an 8-GPU worker: that worker takes no other task, a second worker picks up the next', async function () {
    const env = await getLocalEnv();
    const { taskQueue, workflowId } = isolate(this);
    const gpuQueue = `${taskQueue}-gpu`;
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../fixtures/workflows/gpu-jobs'), logger: new DefaultLogger('WARN') });

    const running = new Map<string, string>(); // job name -> worker that started it
    const letGo = new Map<string, () => void>();
    const release = (name: string) => letGo.get(name)?.();
    const cleanup = new AbortController(); // ends a job still waiting for GPUs when the test stops
    // One connection per worker, as separate worker processes have (the SDK refuses two workers
    // of one queue on one connection).
    const connections: NativeConnection[] = [];
    async function gpuWorker(name: string, gpus: LocalGpuAllocator): Promise<Worker> {
      const connection = await NativeConnection.connect({ address: env.connection.options.address });
      connections.push(connection);
      const activities: GpuJobActivities = {
        async holdGpus(job) {
          const lease = await gpus.acquire(job.gpus, AbortSignal.any([Context.current().cancellationSignal, cleanup.signal]));
          running.set(job.name, name);
          try {
            await new Promise<void>((resolve) => letGo.set(job.name, resolve));
            return name;
          } finally {
            lease.release();
          }
        },
      };
      return Worker.create({ connection, taskQueue: gpuQueue, identity: name, activities, tuner: gpuWorkerTuner(gpus, 1) });
    }

    const gpusA = LocalGpuAllocator.forPool('fake', 8);
    const gpusB = LocalGpuAllocator.forPool('fake', 8);
    const control = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle });
    const workerA = await gpuWorker('worker-a', gpusA);
    const start = (name: string, gpus: number): Promise<WorkflowHandle> =>
      env.client.workflow.start('gpuJobWorkflow', { taskQueue, workflowId: `${workflowId}/${name}`, args: [{ name, gpus, taskQueue: gpuQueue }] });

    let failure: unknown; // kept, so that a failed check is reported rather than the shutdown it causes
    await control.runUntil(
      workerA.runUntil(async () => {
        try {
        const big = await start('big', 8);
        await until('the 8-GPU job runs on worker A', () => running.get('big') === 'worker-a');

        const next = await start('next', 1);
        // Long enough for an idle poller of worker A to have taken the task, had it polled.
        await sleep(3_000);
        const pending = (await next.describe()).raw.pendingActivities ?? [];
        assert.equal(running.has('next'), false, 'worker A took the next job while its 8 GPUs were busy');
        assert.equal(gpusA.waiting, 0, 'worker A holds a task waiting for GPUs');
        assert.equal(pending[0]?.state, temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED, 'the next job stays on the queue for another worker');

        // A second worker joins the pool and picks the next job up while the big one still runs.
        const workerB = await gpuWorker('worker-b', gpusB);
        await workerB.runUntil(async () => {
          await until('worker B runs the next job', () => running.get('next') === 'worker-b');
          assert.equal(gpusA.freeCount, 0, 'the big job still holds worker A');
          release('next');
          assert.equal(await next.result(), 'worker-b');
        });
        release('big');
        assert.equal(await big.result(), 'worker-a');

        // With its GPUs free again, worker A takes work again.
        const after = await start('after', 1);
        await until('worker A runs again', () => running.get('after') === 'worker-a');
        release('after');
        assert.equal(await after.result(), 'worker-a');
        } catch (err) {
          failure = err;
        } finally {
          // A failed check must not leave a job holding the workers.
          cleanup.abort(new Error('test over'));
          for (const let_go of letGo.values()) let_go();
        }
      }),
    );
    for (const c of connections) await c.close();
    if (failure) throw failure;
  });
});
