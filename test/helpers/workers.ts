import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../../activities';
import { gpuTaskQueue } from '../../src/contracts/task-queues';
import { getWorkflowBundle } from './temporal';

/** A pool name unique to one test, so its `gpu-<pool>` queue is the test's own. */
export function uniquePool(): string {
  return 't' + randomUUID().slice(0, 8);
}

/**
 * Run `fn` while a control worker (workflows + `control` activities) polls `taskQueue` and, when
 * `gpu` is given, a GPU worker polls `gpu-<pool>`. Mocks are typed against the real activities.
 */
export async function withWorkers<T>(
  env: TestWorkflowEnvironment,
  opts: { taskQueue: string; control: Partial<Activities>; pool?: string; gpu?: Partial<Activities> },
  fn: () => Promise<T>,
): Promise<T> {
  const workflowBundle = await getWorkflowBundle();
  const workers = [
    await Worker.create({ connection: env.nativeConnection, taskQueue: opts.taskQueue, workflowBundle, activities: opts.control }),
  ];
  if (opts.gpu && opts.pool) {
    workers.push(await Worker.create({ connection: env.nativeConnection, taskQueue: gpuTaskQueue(opts.pool), activities: opts.gpu }));
  }
  const [first, ...rest] = workers;
  const runAll = async (i: number): Promise<T> => {
    const w = i === 0 ? first! : rest[i - 1]!;
    if (i === workers.length - 1) return w.runUntil(fn);
    return w.runUntil(() => runAll(i + 1));
  };
  return runAll(0);
}
