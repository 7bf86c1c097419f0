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
      const { worker, stop, close } = await createWorker(kind, cfg, { connection });
      // The first SIGTERM/SIGINT stops gracefully (a GPU worker's recipes checkpoint first); a
      // second one finds no handler left and ends the process at once.
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        process.once(signal, () => {
          console.log(`forgeline ${kind} worker: ${signal}, stopping${kind === 'gpu' ? ` (running recipes checkpoint and exit; grace ${cfg.worker.shutdownGrace})` : ''}`);
          stop();
        });
      }
      shutdownWithParent({ shutdown: stop }, cfg.worker.parentPid);
      const { metricsHost, metricsPort } = cfg.observability;
      const metrics = metricsPort ? `, metrics on http://${metricsHost === '0.0.0.0' ? '127.0.0.1' : metricsHost}:${metricsPort}/metrics` : '';
      console.log(`forgeline ${kind} worker polling ${taskQueueFor(kind, cfg)} (identity ${worker.options.identity}${metrics})`);
      await worker.run(); // returns after stop(), once in-flight tasks are done
      await close();
    } finally {
      await connection.close();
    }
  });
}
