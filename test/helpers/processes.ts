import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../src/config/load';
import { pipeLines, stopProcessGroup } from '../../src/temporal/dev-server';

import { freePort } from '../../src/cli/serving-stack';

/** A TCP port that was free a moment ago. */
export { freePort };

export function tempHome(label: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `forgeline-${label}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Environment for a `forgeline dev` stack of a test's own: its own home (`home`), ports and
 * therefore its own processes. Unless `vllm`, the stack is pointed at a vLLM "of the user's"
 * (FORGELINE_VLLM_URLS, a port nobody listens on) and starts none; with `vllm` it starts the real
 * one (3 GB and most of a minute of CPU).
 */
export async function devStackEnv(home: string, opts: { vllm?: boolean } = {}) {
  return {
    FORGELINE_HOME: home,
    FORGELINE_DEV_PORT: String(await freePort()),
    FORGELINE_UI_PORT: String(await freePort()),
    FORGELINE_GATEWAY_PORT: String(await freePort()),
    FORGELINE_GATEWAY_ADMIN_TOKEN: '',
    FORGELINE_VLLM_URLS: opts.vllm ? '' : `http://127.0.0.1:${await freePort()}`,
    FORGELINE_LOG_LEVEL: 'warn',
    TEMPORAL_ADDRESS: '',
  };
}

/** PIDs of live processes whose command line or environment mentions `needle`. */
export function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (/^\d+ \(.*\) Z /.test(stat)) continue; // zombie, already dead
      const text = readFileSync(`/proc/${entry}/cmdline`, 'utf8') + readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (text.includes(needle)) pids.push(Number(entry));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return pids;
}

export interface CliProcess {
  child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited(): Promise<number | null>;
}

/** Run `bin/forgeline <args>` with extra environment, capturing its output. */
export function forgeline(args: string[], env: NodeJS.ProcessEnv): CliProcess {
  const child = spawn(path.join(REPO_ROOT, 'bin', 'forgeline'), args, {
    cwd: REPO_ROOT,
    env: { ...process.env, FORGELINE_CONFIG: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => out,
    exited: () => exit,
    waitFor(pattern, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(pattern);
          if (m) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`timed out waiting for ${pattern}; output so far:\n${out}`));
        }, timeoutMs);
        listeners.add(check);
        void exit.then((code) => {
          if (listeners.has(check)) {
            listeners.delete(check);
            clearTimeout(timer);
            reject(new Error(`process exited (${code}) before ${pattern}; output:\n${out}`));
          }
        });
        check();
      });
    },
  };
}

/** A worker process (control or GPU) from workers/*-worker.ts; its output lines go into `log`. */
export function workerProcess(kind: 'control' | 'gpu', env: NodeJS.ProcessEnv, log: string[]): ChildProcess {
  const child = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), path.join(REPO_ROOT, 'workers', `${kind}-worker.ts`)], {
    env: { ...process.env, ...env, FORGELINE_PARENT_PID: String(process.pid) },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  pipeLines(child, (l) => log.push(`[${kind} ${child.pid}] ${l}`));
  return child;
}

/**
 * For an e2e suite that starts worker processes: a home of its own, a log printed when a test
 * fails, and after the suite every process it started (and anything mentioning its home) gone.
 */
export function useWorkerProcesses(label: string): { home: { dir: string }; log: string[]; procs: ChildProcess[] } {
  const home = tempHome(label);
  const log: string[] = [];
  const procs: ChildProcess[] = [];
  after(async function () {
    for (const p of procs) await stopProcessGroup(p, 5000);
    for (const pid of processesMentioning(home.dir)) process.kill(pid, 'SIGKILL');
    home.cleanup();
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(log.slice(-80).join('\n'));
  });
  return { home, log, procs };
}
