/**
 * A GPU lease is durable: it is state of the pool's admission workflow, so it survives a restart
 * of the control worker and of the Temporal server itself (the dev server `forgeline dev` starts,
 * with its SQLite file under FORGELINE_HOME).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker } from '@temporalio/worker';
import { createAdmissionActivities } from '../../activities/admission/leases';
import { loadConfig } from '../../src/config/load';
import type { LeaseRequest } from '../../src/contracts/quota';
import { createAdmissionClient } from '../../src/fleet/admission-client';
import type { GpuAdmission } from '../../src/ports/gpu-admission';
import { devDatabasePath, startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { freePort, tempHome } from '../helpers/processes';
import { quietRuntime } from '../helpers/temporal';
import { quotaYaml, writeQuotaFile } from '../helpers/quotas';

const POOL = 'h200';
const req = (leaseId: string, team: string, gpus: number): LeaseRequest => ({ leaseId, team, pool: POOL, gpus, holder: { workflowId: `holder-${leaseId}`, stage: 'train' } });

describe('GPU leases survive worker and server restarts (real dev server on SQLite)', function () {
  this.timeout(300_000);
  const home = tempHome('admission-restart');
  let server: DevServer | undefined;
  let connection: NativeConnection | undefined;
  let worker: { worker: Worker; running: Promise<void> } | undefined;
  after(async function () {
    if (worker) {
      worker.worker.shutdown();
      await worker.running.catch(() => undefined);
    }
    await connection?.close();
    await server?.stop();
    home.cleanup();
  });

  it('a lease acquired before a worker restart and a server restart is still held, and a release then succeeds', async function () {
    quietRuntime();
    const [devPort, uiPort] = [await freePort(), await freePort()];
    const cfg = loadConfig({ env: { FORGELINE_HOME: home.dir, FORGELINE_DEV_PORT: String(devPort), FORGELINE_UI_PORT: String(uiPort), FORGELINE_VENV: process.env.FORGELINE_VENV, TEMPORAL_CONFIG_FILE: '/dev/null' }, cwd: home.dir });
    const log: string[] = [];
    const quotaFile = writeQuotaFile(quotaYaml(POOL, 3, 2, 1));
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../fixtures/workflows/admission'), logger: new DefaultLogger('WARN') });
    const taskQueue = 'admission-restart';

    const connect = async (): Promise<GpuAdmission> => {
      connection = await NativeConnection.connect({ address: `127.0.0.1:${devPort}` });
      return createAdmissionClient({ client: new Client({ connection, namespace: cfg.temporal.namespace }), taskQueue, quotaFile, waitTickMs: 500 });
    };
    const startWorker = async (admission: GpuAdmission) => {
      const w = await Worker.create({ connection: connection!, namespace: cfg.temporal.namespace, taskQueue, workflowBundle, activities: createAdmissionActivities({ admission }) });
      worker = { worker: w, running: w.run() };
    };
    const stopWorker = async () => {
      worker!.worker.shutdown();
      await worker!.running;
      worker = undefined;
    };

    server = await startDevServer(cfg, (l) => log.push(l));
    let admission = await connect();
    await startWorker(admission);
    const held = await admission.acquire(req('l1', 'a', 2));
    assert.equal(held.gpus, 2);
    const waiting = admission.acquire(req('l2', 'b', 2)).catch((e: unknown) => e); // b borrows 1 that a does not lend: waits
    for (let i = 0; (await admission.status(POOL))?.waitingLeases.length !== 1; i++) {
      assert.ok(i < 300, 'l2 never waited');
      await new Promise((r) => setTimeout(r, 100));
    }

    // The control worker restarts.
    await stopWorker();
    await startWorker(admission);
    assert.deepEqual(await admission.acquire(req('l1', 'a', 2)), held, 'after a worker restart the lease is held, same grant');

    // The server restarts on the same SQLite file.
    await stopWorker();
    await connection!.close();
    await server.stop();
    server = undefined;
    await waiting; // its connection is gone; the caller (an activity) would ask again
    assert.ok(existsSync(devDatabasePath(cfg)), 'the dev server keeps its state in FORGELINE_HOME');
    assert.equal(path.dirname(devDatabasePath(cfg)), path.join(home.dir, 'temporal'));
    server = await startDevServer(cfg, (l) => log.push(l));
    admission = await connect();
    await startWorker(admission);

    const s = (await admission.status(POOL))!;
    assert.deepEqual(s.leases.map((l) => [l.leaseId, l.team, l.gpus, l.grantedAt]), [['l1', 'a', 2, held.grantedAt]]);
    assert.deepEqual(s.waitingLeases.map((w) => w.leaseId), ['l2'], 'the waiting request survived too');
    assert.deepEqual(await admission.acquire(req('l1', 'a', 2)), held);

    // The waiting request is asked again (as the activity's retry would) and granted once l1 is released.
    const again = admission.acquire(req('l2', 'b', 2));
    assert.deepEqual(await admission.release(POOL, 'l1', 'done'), { leaseId: 'l1', was: 'held' });
    const g2 = await again;
    assert.deepEqual([g2.leaseId, g2.gpus, g2.borrowed], ['l2', 2, 1]);
    assert.deepEqual(await admission.release(POOL, 'l2'), { leaseId: 'l2', was: 'held' });
    assert.equal((await admission.status(POOL))!.inUse, 0);
  });
});
