/**
 * PID 1 of a Kubernetes recipe Job (PREEMPT_WRAPPER in src/adapters/kubernetes-job-runner.ts), run
 * for real under /bin/sh: the pod's SIGTERM becomes the recipe protocol's SIGUSR1 (again every
 * second until the recipe exits), and the recipe's exit code is the container's.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { PREEMPT_WRAPPER } from '../../src/adapters/kubernetes-job-runner';

/** Process groups of the wrappers started, ended after each test whatever happened. */
const groups = new Set<number>();

/** Starts the wrapper around an sh "recipe" (a process group of its own); resolves with its exit code and what the recipe printed. */
function wrapped(recipe: string, afterStart?: (pid: number) => void): Promise<{ code: number | null; out: string }> {
  const child = spawn('/bin/sh', ['-c', PREEMPT_WRAPPER, 'forgeline-recipe', '/bin/sh', '-c', recipe], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  groups.add(child.pid!);
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    out += chunk;
    if (out.includes('ready\n') && afterStart) {
      const f = afterStart;
      afterStart = undefined;
      f(child.pid!);
    }
  });
  return once(child, 'close').then(([code]) => ({ code: code as number | null, out }));
}

describe('Kubernetes Job PID 1: SIGTERM to the protocol\'s SIGUSR1', function () {
  this.timeout(20_000);
  afterEach(() => {
    for (const pgid of groups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    groups.clear();
  });

  it('passes the recipe\'s exit code through (0, 2, 1)', async () => {
    for (const code of [0, 2, 1]) assert.equal((await wrapped(`exit ${code}`)).code, code);
  });

  it('turns SIGTERM into SIGUSR1: the recipe checkpoints and its exit 75 is the container\'s', async () => {
    const recipe = `trap 'echo checkpoint; exit 75' USR1; echo ready; while :; do sleep 0.05; done`;
    const { code, out } = await wrapped(recipe, (pid) => process.kill(pid, 'SIGTERM'));
    assert.equal(code, 75);
    assert.match(out, /checkpoint/);
  });

  it('asks again every second, for a recipe that acts on the request only later', async () => {
    // Ignores the first request (not at a step boundary yet), checkpoints on the second.
    const recipe = `n=0; trap 'n=$((n+1)); if [ $n -ge 2 ]; then echo "checkpoint after $n"; exit 75; fi' USR1; echo ready; while :; do sleep 0.05; done`;
    const { code, out } = await wrapped(recipe, (pid) => process.kill(pid, 'SIGTERM'));
    assert.equal(code, 75);
    assert.match(out, /checkpoint after 2/);
  });

  it('a recipe that ignores the request keeps running to its own end', async () => {
    const recipe = `trap '' USR1; echo ready; sleep 1.5; echo done; exit 0`;
    const { code, out } = await wrapped(recipe, (pid) => process.kill(pid, 'SIGTERM'));
    assert.equal(code, 0);
    assert.match(out, /done/);
  });
});
