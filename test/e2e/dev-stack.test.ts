import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { forgeline, freePort, processesMentioning, tempHome, type CliProcess } from '../helpers/processes';
import { venvBin } from '../helpers/temporal';

/** Environment for a stack of our own: its own home, ports and therefore its own processes. */
async function stackEnv(label: string) {
  const home = tempHome(label);
  const env = {
    FORGELINE_HOME: home.dir,
    FORGELINE_DEV_PORT: String(await freePort()),
    FORGELINE_UI_PORT: String(await freePort()),
    FORGELINE_LOG_LEVEL: 'warn',
    TEMPORAL_ADDRESS: '',
  };
  return { home, env };
}

async function stop(p: CliProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (p.child.exitCode === null) p.child.kill(signal);
  return p.exited();
}

function listWorkflows(port: string): string {
  return execFileSync(venvBin('temporal'), ['workflow', 'list', '--address', `127.0.0.1:${port}`, '--output', 'json'], { encoding: 'utf8' });
}

describe('forgeline dev and demo (e2e: Temporal CLI dev server, control and GPU worker processes)', function () {
  this.timeout(240_000);
  const started: CliProcess[] = [];
  const homes: Array<{ dir: string; cleanup(): void }> = [];
  const track = (p: CliProcess) => (started.push(p), p);

  after(async function () {
    for (const p of started) if (p.child.exitCode === null) await stop(p, 'SIGKILL');
    for (const h of homes) {
      for (const pid of processesMentioning(h.dir)) process.kill(pid, 'SIGKILL');
      h.cleanup();
    }
  });

  it('refuses a bad configuration at start with one line naming the variable, and no stack trace', async function () {
    const { home, env } = await stackEnv('badcfg');
    homes.push(home);
    const p = track(forgeline(['dev'], { ...env, FORGELINE_GPU_COUNT: 'lots', FORGELINE_ARTIFACT_URI: 'ftp://x' }));
    assert.equal(await p.exited(), 2);
    assert.match(p.output(), /FORGELINE_GPU_COUNT="lots": expected a whole number/);
    assert.match(p.output(), /FORGELINE_ARTIFACT_URI="ftp:\/\/x": expected file:\/\/\/absolute\/dir or s3:\/\/bucket/);
    assert.doesNotMatch(p.output(), /\n\s+at /, 'no stack trace');
  });

  it('comes up, serves a stack check, and a second `dev` reuses the running server', async function () {
    const { home, env } = await stackEnv('reuse');
    homes.push(home);
    const first = track(forgeline(['dev'], env));
    await first.waitFor(/forgeline dev is up/);
    assert.match(first.output(), new RegExp(`Temporal Web UI: http://localhost:${env.FORGELINE_UI_PORT}`));

    const second = track(forgeline(['dev'], env));
    await second.waitFor(/forgeline dev is up/);
    assert.match(second.output(), /already listening .* reusing it/);

    const check = track(forgeline(['check', '--timeout', '60s'], env));
    assert.equal(await check.exited(), 0, check.output());
    assert.match(check.output(), /stack check passed/);

    assert.equal(await stop(second), 0);
    const again = track(forgeline(['check', '--timeout', '60s'], env));
    assert.equal(await again.exited(), 0, 'the first stack still serves after the second one stops');
    assert.equal(await stop(first), 0);
  });

  it('SIGTERM stops the server and both workers cleanly, leaving no process behind', async function () {
    const { home, env } = await stackEnv('sigterm');
    homes.push(home);
    const dev = track(forgeline(['dev'], env));
    await dev.waitFor(/forgeline dev is up/);
    assert.ok(processesMentioning(home.dir).length >= 3, 'server and two workers are running');
    assert.equal(await stop(dev, 'SIGTERM'), 0);
    assert.match(dev.output(), /local stack stopped/);
    assert.deepEqual(processesMentioning(home.dir), [], 'no orphan processes');
  });

  it('a killed dev server, started again, still lists the finished workflows', async function () {
    const { home, env } = await stackEnv('restart');
    homes.push(home);
    const dev = track(forgeline(['dev'], env));
    await dev.waitFor(/forgeline dev is up/);
    const check = track(forgeline(['check'], env));
    assert.equal(await check.exited(), 0, check.output());
    const checkId = check.output().match(/started (stack-check\/\S+)/)![1]!;

    const serverPids = processesMentioning(`${home.dir}/temporal/dev.sqlite`);
    assert.equal(serverPids.length, 1, 'exactly one dev server process');
    process.kill(serverPids[0]!, 'SIGKILL');
    assert.equal(await dev.exited(), 1, 'dev notices its server died and stops with an error');
    assert.match(dev.output(), /temporal dev server exited unexpectedly/);
    assert.deepEqual(processesMentioning(home.dir), [], 'workers stopped with it');

    const again = track(forgeline(['dev'], env));
    await again.waitFor(/forgeline dev is up/);
    const listed = JSON.parse(listWorkflows(env.FORGELINE_DEV_PORT)) as Array<{ execution: { workflowId: string }; status: string }>;
    const found = listed.find((w) => w.execution.workflowId === checkId);
    assert.ok(found, `${checkId} survives the restart`);
    assert.match(String(found.status), /COMPLETED/);
    assert.equal(await stop(again), 0);
  });

  it('`forgeline demo` brings up its own stack, runs the main job, prints what it made and exits 0', async function () {
    // The main job is a real release (train, quantize, evaluate): about a minute on two idle cores.
    this.timeout(600_000);
    const { home, env } = await stackEnv('demo');
    homes.push(home);
    const demo = track(forgeline(['demo'], env));
    assert.equal(await demo.exited(), 0, demo.output());
    const out = demo.output();
    assert.match(out, /stack check passed/);
    const artifact = out.match(/artifact: +(file:\/\/\S+)/)![1]!;
    const run = out.match(/tracker run: +(file:\/\/\S+)/)![1]!;
    assert.ok(existsSync(fileURLToPath(artifact)), 'the artifact exists');
    const lines = readFileSync(fileURLToPath(run), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    assert.ok(lines.some((l) => l.type === 'log'), 'the tracker run has a metric row');
    assert.deepEqual(processesMentioning(home.dir), [], 'the demo leaves nothing running');
  });
});
