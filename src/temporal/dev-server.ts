import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ForgelineConfig } from '../config/schema';
import { ConfigError } from '../ports/errors';
import { FORGELINE_SEARCH_ATTRIBUTES } from '../contracts/search-attributes';

/** True when something accepts TCP connections on host:port. */
export function isListening(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export function temporalCli(cfg: ForgelineConfig): string {
  const bin = path.join(cfg.venv, 'bin', 'temporal');
  if (!existsSync(bin)) throw new ConfigError(`Temporal CLI not found at ${bin}: run scripts/bootstrap (npm run dev and npm run demo do), or set FORGELINE_VENV.`);
  return bin;
}

/** Where the dev server keeps its SQLite database, so histories survive restarts. */
export function devDatabasePath(cfg: ForgelineConfig): string {
  return path.join(cfg.home, 'temporal', 'dev.sqlite');
}

/**
 * Dynamic config for every dev server we start (`forgeline dev`, the tests, the benchmark).
 *
 * The dev server has one history shard, and a shard reads its transfer queue (the tasks that
 * hand each workflow task and each non-eager activity task to matching) at most
 * `history.transferProcessorMaxPollRPS` times a second: 20 by default, a budget sized for
 * clusters with hundreds of shards. On one shard it is the whole server's budget, so every step of
 * a sequential lifecycle waited for the next 50 ms slot: a release with no-op activities needs
 * about 13 reads and took 630 ms (2.55 s at 5 reads/s; 370 ms at 1000 reads/s, where what is left
 * is CPU: bench/results/orchestration.json). The reader still reads only when new tasks arrive,
 * so a higher budget costs nothing when idle.
 */
export const DEV_SERVER_DYNAMIC_CONFIG: Readonly<Record<string, number | boolean>> = {
  'history.transferProcessorMaxPollRPS': 1000,
  // Task-queue priority and fairness (teams' GPU tasks carry priorityKey, fairnessKey = team and
  // fairnessWeight): Server 1.32 ships both off. `enableFairness` implies the new matcher, which
  // also orders by priority key; `useNewMatcher` says so for queues where fairness is switched off.
  'matching.useNewMatcher': true,
  'matching.enableFairness': true,
  // One partition per task queue: partitions spread a queue over matching hosts (the dev server
  // has one) and make fairness approximate (Temporal's docs); with one, dispatch is exact.
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
};

/** `DEV_SERVER_DYNAMIC_CONFIG` as `temporal server start-dev` flags. */
export function devServerDynamicConfigArgs(): string[] {
  return Object.entries(DEV_SERVER_DYNAMIC_CONFIG).flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${JSON.stringify(v)}`]);
}

export interface DevServer {
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Start `temporal server start-dev` with its SQLite file under FORGELINE_HOME and our search
 * attributes, in its own process group, and wait until its frontend accepts connections.
 */
export async function startDevServer(cfg: ForgelineConfig, log: (line: string) => void): Promise<DevServer> {
  const db = devDatabasePath(cfg);
  mkdirSync(path.dirname(db), { recursive: true });
  const args = [
    'server', 'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(cfg.temporal.devPort),
    '--ui-port', String(cfg.temporal.uiPort),
    '--db-filename', db,
    '--namespace', cfg.temporal.namespace,
    '--log-level', 'error',
    ...devServerDynamicConfigArgs(),
    ...FORGELINE_SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]),
  ];
  const child = spawn(temporalCli(cfg), args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  pipeLines(child, log);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });

  const deadline = Date.now() + 60_000;
  while (!(await isListening(cfg.temporal.devPort))) {
    if (exited) throw new Error(`temporal server start-dev exited with code ${child.exitCode} before listening on ${cfg.temporal.devPort} (see its output above)`);
    if (Date.now() > deadline) {
      await stopProcessGroup(child, 5_000);
      throw new Error(`temporal server start-dev did not listen on port ${cfg.temporal.devPort} within 60s`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { process: child, stop: () => stopProcessGroup(child, 15_000) };
}

/** Forward a child's stdout and stderr line by line. */
export function pipeLines(child: ChildProcess, log: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        log(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    stream.on('end', () => {
      if (buf) log(buf);
    });
  }
}

/**
 * SIGTERM the child's whole process group (it was spawned detached), wait for it to exit, and
 * SIGKILL the group after `graceMs`. Never leaves an orphan.
 */
export function stopProcessGroup(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  const pid = child.pid;
  return new Promise((resolve) => {
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig);
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      kill('SIGKILL'); // stragglers in the group, if any
      resolve();
    });
    kill('SIGTERM');
  });
}
