import { loadConfig } from '../src/config/load';
import { connectWorker } from '../src/temporal/connection';
import { runMain } from '../src/cli/run-main';
import type { ForgelineConfig } from '../src/config/schema';
import { secondsLeft, SpotNoticeWatcher, type SpotNotice } from '../src/fleet/spot';
import { createWorker, installRuntime, shutdownWithParent, taskQueueFor, type ForgelineWorker, type WorkerKind } from './build';

/** Entry shared by control-worker.ts and gpu-worker.ts: config, connection, poll until signalled. */
export function runWorkerProcess(kind: WorkerKind): void {
  runMain(async () => {
    const cfg = loadConfig();
    installRuntime(cfg);
    const connection = await connectWorker(cfg);
    try {
      const { worker, stop, close, shutdownGraceMs } = await createWorker(kind, cfg, { connection });
      // The first SIGTERM/SIGINT stops gracefully (a GPU worker's recipes checkpoint first); a
      // second one finds no handler left and ends the process at once.
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        process.once(signal, () => {
          console.log(`forgeline ${kind} worker: ${signal}, stopping${kind === 'gpu' ? ` (running recipes checkpoint and exit; grace ${cfg.worker.shutdownGrace})` : ''}`);
          stop();
        });
      }
      shutdownWithParent({ shutdown: stop }, cfg.worker.parentPid);
      const spot = kind === 'gpu' ? watchSpotNotice(cfg, stop, shutdownGraceMs) : undefined;
      const { metricsHost, metricsPort } = cfg.observability;
      const metrics = metricsPort ? `, metrics on http://${metricsHost === '0.0.0.0' ? '127.0.0.1' : metricsHost}:${metricsPort}/metrics` : '';
      console.log(`forgeline ${kind} worker polling ${taskQueueFor(kind, cfg)} (identity ${worker.options.identity}${metrics})`);
      await worker.run(); // returns after stop(), once in-flight tasks are done
      spot?.stop();
      await close();
      const notice = spot?.notice();
      if (notice) console.log(`forgeline gpu worker: stopped for the spot notice, exiting ${secondsLeft(notice)} s before its deadline`);
    } finally {
      await connection.close();
    }
  });
}

/**
 * A GPU worker on a spot machine (FORGELINE_SPOT_PROVIDER): poll the metadata endpoint, and on the
 * notice stop as on SIGTERM, naming it. Should the stop outlast the notice, the process exits at
 * the deadline anyway (the attempts still running then are retried after their heartbeat timeout).
 */
function watchSpotNotice(cfg: ForgelineConfig, stop: ForgelineWorker['stop'], graceMs: number): { stop(): void; notice(): SpotNotice | undefined } | undefined {
  const spot = cfg.worker.spot;
  if (!spot) return undefined;
  const watcher = new SpotNoticeWatcher({
    provider: spot.provider,
    ...(spot.metadataUrl ? { metadataUrl: spot.metadataUrl } : {}),
    pollMs: spot.pollSeconds * 1000,
    onError: (m) => console.warn(`forgeline gpu worker: ${m}`),
  }).start();
  console.log(`forgeline gpu worker: spot (${spot.provider}): polling ${watcher.baseUrl} every ${spot.pollSeconds} s for the preemption notice; shutdown grace ${graceMs / 1000} s`);
  let seen: SpotNotice | undefined;
  void watcher.notice.then((notice) => {
    seen = notice;
    stop(notice);
    const backstop = setTimeout(() => {
      console.error(`forgeline gpu worker: the spot deadline (${notice.deadline.toISOString()}) has come and tasks are still running; exiting now (their attempts are retried after their heartbeat timeout)`);
      process.exit(1);
    }, Math.max(0, notice.deadline.getTime() - Date.now() - 1000));
    backstop.unref();
  });
  return {
    stop: () => watcher.stop(),
    notice: () => seen,
  };
}
