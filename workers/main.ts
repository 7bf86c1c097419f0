import { loadConfig } from '../src/config/load';
import { connectWorker } from '../src/temporal/connection';
import { runMain } from '../src/cli/run-main';
import { createWorker, installRuntime, shutdownWithParent, taskQueueFor, type WorkerKind } from './build';

/** Entry shared by control-worker.ts and gpu-worker.ts: config, connection, poll until signalled. */
export function runWorkerProcess(kind: WorkerKind): void {
  runMain(async () => {
    const cfg = loadConfig();
    installRuntime(cfg);
    const connection = await connectWorker(cfg);
    try {
      const worker = await createWorker(kind, cfg, { connection });
      const parent = process.env.FORGELINE_PARENT_PID ? Number(process.env.FORGELINE_PARENT_PID) : undefined;
      shutdownWithParent(worker, parent);
      console.log(`forgeline ${kind} worker polling ${taskQueueFor(kind, cfg)} (identity ${worker.options.identity})`);
      await worker.run(); // returns after SIGINT/SIGTERM, once in-flight tasks are done
    } finally {
      await connection.close();
    }
  });
}
