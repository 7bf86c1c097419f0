/**
 * The Prefect 3 peer of the orchestration benchmark: what a user would run instead of Temporal
 * for the same pipeline. Its own venv (bench/peers/setup-prefect.sh makes it when absent), its
 * local server as the Prefect docs have users start it (`prefect server start`, SQLite under
 * PREFECT_HOME, here a temporary directory, UI off as our Temporal server runs headless), and a
 * flow of 9 sequential no-op tasks (bench/peers/prefect_release.py) run in batches that the
 * driver interleaves with ours.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { REPO_ROOT } from '../../src/config/load';
import { pipeLines, stopProcessGroup } from '../../src/temporal/dev-server';
import { freePort } from '../../test/helpers/processes';

export const PREFECT_VENV = process.env.FORGELINE_PREFECT_VENV ?? path.join(REPO_ROOT, 'bench', '.venv-prefect');
const SERVER_START_TIMEOUT_MS = 300_000; // a cold start imports a lot; minutes on a loaded 2-core machine

export interface PrefectPeer {
  version: string;
  /** Wall times (ms) of `n` flow runs, each from calling the flow to its return. */
  runs(n: number): Promise<number[]>;
  /** The process ids whose CPU time the flow runs cost: the flow's own process and the server. */
  pids: { client: number | undefined; server: number | undefined };
  stop(): Promise<void>;
}

/** Creates the venv when absent (idempotent script); throws with the script's output when it fails. */
export function ensurePrefectVenv(): void {
  const setup = spawnSync('bash', [path.join(REPO_ROOT, 'bench', 'peers', 'setup-prefect.sh')], { encoding: 'utf8', env: { ...process.env, FORGELINE_PREFECT_VENV: PREFECT_VENV } });
  if (setup.status !== 0) throw new Error(`bench/peers/setup-prefect.sh failed (exit ${setup.status}):\n${setup.stdout}${setup.stderr}`);
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
    return res.ok;
  } catch {
    return false;
  }
}

/** Start the Prefect server and the peer process; `spec` is the release spec the flow passes along. */
export async function startPrefectPeer(spec: unknown, warmup: number, log: (line: string) => void): Promise<PrefectPeer> {
  ensurePrefectVenv();
  const home = mkdtempSync(path.join(os.tmpdir(), 'forgeline-prefect-'));
  const port = await freePort();
  const apiUrl = `http://127.0.0.1:${port}/api`;
  const env = {
    ...process.env,
    PREFECT_HOME: home,
    PREFECT_API_URL: apiUrl,
    PREFECT_SERVER_ANALYTICS_ENABLED: 'false',
    PREFECT_SERVER_UI_ENABLED: 'false',
    // Our workers log at ERROR in the bench; Prefect's default INFO would print (and ship to the
    // API) a few lines per task run.
    PREFECT_LOGGING_LEVEL: 'WARNING',
  };
  const server = spawn(path.join(PREFECT_VENV, 'bin', 'prefect'), ['server', 'start', '--host', '127.0.0.1', '--port', String(port), '--no-ui'], {
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const serverLines: string[] = [];
  pipeLines(server, (l) => serverLines.push(l));
  const cleanup = async () => {
    await stopProcessGroup(server, 10_000);
    rmSync(home, { recursive: true, force: true });
  };

  const deadline = Date.now() + SERVER_START_TIMEOUT_MS;
  while (!(await healthy(apiUrl))) {
    if (server.exitCode !== null || Date.now() > deadline) {
      await cleanup();
      throw new Error(`prefect server start did not become healthy at ${apiUrl}: ${serverLines.slice(-20).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  log(`prefect server up at ${apiUrl}`);

  const peer: ChildProcessWithoutNullStreams = spawn(path.join(PREFECT_VENV, 'bin', 'python'), [path.join(REPO_ROOT, 'bench', 'peers', 'prefect_release.py')], { env });
  let stderr = '';
  peer.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const replies = readline.createInterface({ input: peer.stdout })[Symbol.asyncIterator]();
  const ask = async (msg: object): Promise<Record<string, unknown>> => {
    peer.stdin.write(JSON.stringify(msg) + '\n');
    const next = await replies.next();
    if (next.done) throw new Error(`the Prefect peer exited (code ${peer.exitCode}): ${stderr.slice(-2000)}`);
    return JSON.parse(next.value) as Record<string, unknown>;
  };
  try {
    const ready = await ask({ spec, warmup });
    return {
      version: String(ready.prefect),
      runs: async (n) => (await ask({ runs: n })).ms as number[],
      pids: { client: peer.pid, server: server.pid },
      stop: async () => {
        peer.stdin.end();
        await new Promise((r) => (peer.exitCode !== null ? r(null) : peer.once('exit', r)));
        await cleanup();
      },
    };
  } catch (err) {
    peer.kill('SIGKILL');
    await cleanup();
    throw err;
  }
}
