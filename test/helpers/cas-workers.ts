/**
 * Starts test/helpers/local-cas-worker.ts in processes of their own: other workers on the same
 * local store, for the cross-process tests of compareAndSwap and of the registry.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

const WORKER = path.join(__dirname, 'local-cas-worker.ts');

export interface CasWorker {
  child: ChildProcess;
  /** Releases the worker (it waits for this after printing "ready"). */
  go(): void;
  /** The first line the worker printed that matches `pattern`, waiting for it. */
  line(pattern: RegExp): Promise<string>;
}

const running = new Set<ChildProcess>();

/** Starts a worker and resolves once it is ready. Stop it with stopCasWorkers(). */
export async function startCasWorker(args: string[]): Promise<CasWorker> {
  const child = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), WORKER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const seen: string[] = [];
  const waiters: Array<() => void> = [];
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    seen.push(l);
    for (const wake of waiters.splice(0)) wake();
  });
  const line = async (pattern: RegExp): Promise<string> => {
    for (;;) {
      const hit = seen.find((l) => pattern.test(l));
      if (hit !== undefined) return hit;
      if (child.exitCode !== null) throw new Error(`worker exited (${child.exitCode}) before printing ${pattern}: ${stderr}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  };
  await line(/^ready$/);
  return { child, go: () => child.stdin!.write('go\n'), line };
}

/** Kills every worker still running. */
export function stopCasWorkers(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}
