import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { devStackEnv, forgeline, processesMentioning, tempHome, type CliProcess } from '../helpers/processes';
import { venvBin } from '../helpers/temporal';

/** A stack of our own (see devStackEnv): its own home, ports and processes. */
async function stackEnv(label: string, opts: { vllm?: boolean } = {}) {
  const home = tempHome(label);
  return { home, env: await devStackEnv(home.dir, opts) };
}

/** A completion through the gateway with the dev key. */
async function complete(gateway: string, prompt: string) {
  const res = await fetch(`${gateway}/v1/completions`, {
    method: 'POST',
    headers: { authorization: 'Bearer forgeline-dev', 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny-demo', prompt, max_tokens: 8, temperature: 0 }),
  });
  return { status: res.status, version: res.headers.get('x-forgeline-version'), body: (await res.json()) as { choices?: Array<{ text: string }>; error?: { message: string } } };
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
    assert.match(second.output(), /Temporal already listening .* reusing it/);
    assert.match(second.output(), /gateway already listening on http:\/\/127\.0\.0\.1:\d+: reusing it/);
    assert.match(second.output(), /vLLM: using FORGELINE_VLLM_URLS/);

    const check = track(forgeline(['check', '--timeout', '60s'], env));
    assert.equal(await check.exited(), 0, check.output());
    assert.match(check.output(), /stack check passed/);

    assert.equal(await stop(second), 0);
    const again = track(forgeline(['check', '--timeout', '60s'], env));
    assert.equal(await again.exited(), 0, 'the first stack still serves after the second one stops');
    assert.equal(await stop(first), 0);
  });

  it('serves the tiny base model through the gateway and real vLLM; SIGTERM stops the server, both workers, vLLM and the gateway, leaving no process behind', async function () {
    // Builds the tiny base model and starts a real vLLM on CPU (20-60 s).
    this.timeout(420_000);
    const { home, env } = await stackEnv('sigterm', { vllm: true });
    homes.push(home);
    const dev = track(forgeline(['dev'], env));
    await dev.waitFor(/forgeline dev is up[^]*\n {2}routes: curl/, 360_000);
    const gateway = `http://127.0.0.1:${env.FORGELINE_GATEWAY_PORT}`;
    assert.match(dev.output(), new RegExp(`gateway +${gateway}/v1 .*model "tiny-demo", API key "forgeline-dev"`));
    assert.match(dev.output(), /curl -s http:\/\/127\.0\.0\.1:\d+\/v1\/completions -H 'Authorization: Bearer forgeline-dev'/);

    const models = await fetch(`${gateway}/v1/models`, { headers: { authorization: 'Bearer forgeline-dev' } });
    assert.equal(models.status, 200);
    assert.deepEqual(((await models.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id), ['tiny-demo']);
    const answer = await complete(gateway, 'reverse : a b c =');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.version, 'tiny-demo@base', 'the initial route sends tiny-demo to the base model');
    assert.equal(typeof answer.body.choices?.[0]?.text, 'string');
    const refused = await fetch(`${gateway}/admin/routes`, { headers: { authorization: 'Bearer not-the-token' } });
    assert.equal(refused.status, 401, 'the admin API has a token even though none was configured');

    const vllmPid = processesMentioning(`${home.dir}/models/`);
    assert.ok(vllmPid.length >= 1, 'vLLM serves the model built under the home');
    assert.ok(processesMentioning(home.dir).length >= 4, 'server, two workers and vLLM are running');
    assert.equal(await stop(dev, 'SIGTERM'), 0);
    assert.match(dev.output(), /local stack stopped/);
    assert.deepEqual(processesMentioning(home.dir), [], 'no orphan processes');
    await assert.rejects(fetch(`${gateway}/health`), 'the gateway stopped with the stack');
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

  it('`forgeline demo` brings up its own stack with the gateway and vLLM; under real load the good candidate is Promoted and the bad one RolledBack by the canary; exits 0', async function () {
    // Two real releases (train, quantize, evaluate, canary through vLLM on CPU): 3-6 minutes on two cores.
    this.timeout(1_200_000);
    const { home, env } = await stackEnv('demo', { vllm: true });
    homes.push(home);
    const demo = track(forgeline(['demo'], env));
    assert.equal(await demo.exited(), 0, demo.output());
    const out = demo.output();
    assert.match(out, /stack check passed/);
    assert.match(out, /vLLM up in [\d.]+s at http:\/\/127\.0\.0\.1:\d+, serving tiny-llama-base/);
    assert.match(out, /load generator: \d+ requests\/s/);
    // The good candidate: every step passed against the base model, then Promoted.
    assert.match(out, /^release good: Promoted$/m);
    const good = out.match(/^ {2}good +Promoted +(release\/tiny-demo\/\S+)\n((?: {8}.*\n)+)/m);
    assert.ok(good, 'the summary lists the good release as Promoted');
    assert.match(good[2]!, /step 1 \(50%\) Pass: /);
    assert.match(good[2]!, /step 2 \(100%\) Pass: /);
    assert.doesNotMatch(good[2]!, /\) Fail: /);
    // The bad candidate: through its offline gate, failed by the canary's feedback, RolledBack.
    assert.match(out, /gate PASS Δperplexity/);
    assert.match(out, /^release bad: RolledBack: canary failed at step 1 \(50%\): Fail .*feedback_score \(critical\) Fail.*; rolled back$/m);
    const bad = out.match(/^ {2}bad +RolledBack +(release\/tiny-demo\/\S+)\n((?: {8}.*\n)+)/m);
    assert.ok(bad, 'the summary lists the bad release as RolledBack');
    assert.match(bad[2]!, /step 1 \(50%\) Fail: /);
    // Afterwards: all traffic on the good version, the bad adapter unloaded.
    const goodLabel = out.match(/^ {8}step 1 \(50%\) Pass: Pass \(.*; (tiny-demo@[0-9a-f]{12}) vs tiny-demo@base\)/m)![1]!;
    assert.match(out, new RegExp(`^ {2}route tiny-demo: ${goodLabel} \\(\\S+\\) 100$`, 'm'));
    const served = out.match(/^ {2}vLLM serves: (.*)$/m)![1]!.split(', ');
    assert.deepEqual(served.sort(), ['tiny-llama-base', goodLabel.replace('@', '-')].sort(), 'only the base and the good adapter stay loaded');
    assert.match(out, /demo finished in [\d.]+s: the good candidate was Promoted and the bad one RolledBack, as expected/);
    const artifact = out.match(/artifact: +(file:\/\/\S+)/)![1]!;
    const run = out.match(/tracker run: +(file:\/\/\S+)/)![1]!;
    assert.ok(existsSync(fileURLToPath(artifact)), 'the artifact exists');
    const lines = readFileSync(fileURLToPath(run), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    assert.ok(lines.some((l) => l.type === 'log'), 'the tracker run has a metric row');
    assert.deepEqual(processesMentioning(home.dir), [], 'the demo leaves nothing running');
  });
});
