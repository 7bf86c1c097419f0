/**
 * LocalModelLauncher's bookkeeping with real processes, fast: the servers are a stand-in for vLLM
 * (test/helpers/fake-vllm-server.cjs, started exactly as startVllm starts vLLM) so the state file,
 * lock, adoption, dead and foreign records and process groups are tested in seconds. The real
 * vLLM serving a W4A16 model: test/integration/quantized-serving.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { processGroupAlive } from '../../src/adapters/local-job-runner';
import { LocalModelLauncher } from '../../src/adapters/local-model-launcher';
import { REPO_ROOT } from '../../src/config/load';
import { ConfigError, ForgelineError } from '../../src/ports/errors';
import { tempHome } from '../helpers/processes';

const FAKE = path.join(REPO_ROOT, 'test', 'helpers', 'fake-vllm-server.cjs');
const pidOf = (where: string) => Number(/^pid (\d+) /.exec(where)![1]);

/** Members of process group `pgid`, leader excluded. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === pgid) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid && f[0] !== 'Z') out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

describe('LocalModelLauncher (integration: real processes, a vLLM stand-in)', function () {
  this.timeout(60_000);
  let home: ReturnType<typeof tempHome>;
  let model: string;
  let stateDir: string;
  const launcher = (env: NodeJS.ProcessEnv = {}) => new LocalModelLauncher({ stateDir, ownerPid: process.pid, vllm: { python: FAKE, env: { ...process.env, ...env }, startTimeoutMs: 20_000, killGraceMs: 2_000 } });
  const req = (id = 'demo-aaaaaaaaaaaa-quantized') => ({ id, modelDir: model, servedModelName: id });

  beforeEach(function () {
    home = tempHome('launcher');
    model = path.join(home.dir, 'model');
    mkdirSync(model);
    writeFileSync(path.join(model, 'config.json'), '{}');
    stateDir = path.join(home.dir, 'serving', 'launches');
  });
  afterEach(async function () {
    await launcher().stopAll();
    await rm(home.dir, { recursive: true, force: true });
  });

  it('launches once per id: a record with pid, port and URL; another launcher instance (a restarted worker) adopts the server', async function () {
    const progress: string[] = [];
    const a = await launcher().launch({ ...req(), onProgress: (m) => progress.push(m) });
    assert.equal(a.adopted, false);
    assert.match(a.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(progress.some((m) => m.startsWith('starting vLLM for demo-aaaaaaaaaaaa-quantized')));
    const rec = JSON.parse(readFileSync(path.join(stateDir, 'demo-aaaaaaaaaaaa-quantized.json'), 'utf8')) as { pid: number; url: string; modelDir: string };
    assert.equal(rec.pid, pidOf(a.where));
    assert.equal(rec.url, a.url);
    assert.equal(rec.modelDir, model);
    assert.match(readFileSync(path.join(stateDir, 'demo-aaaaaaaaaaaa-quantized.log'), 'utf8'), /fake vLLM serving demo-aaaaaaaaaaaa-quantized/);

    const b = await launcher().launch(req());
    assert.equal(b.adopted, true);
    assert.equal(b.url, a.url);
    assert.equal(pidOf(b.where), pidOf(a.where));
    assert.deepEqual((await launcher().list()).map((m) => m.id), ['demo-aaaaaaaaaaaa-quantized']);
  });

  it('concurrent launches of one id in one process share one start', async function () {
    const l = launcher();
    const [a, b] = await Promise.all([l.launch(req()), l.launch(req())]);
    assert.equal(a.url, b.url);
    assert.equal(a.where, b.where);
  });

  it('records a server as soon as it exists; another launcher (a second worker) waits for that start and adopts the server', async function () {
    const first = launcher({ FAKE_VLLM_DELAY_MS: '1500' }).launch(req());
    const record = path.join(stateDir, 'demo-aaaaaaaaaaaa-quantized.json');
    for (let i = 0; i < 200 && !existsSync(record); i++) await sleep(10);
    const early = JSON.parse(readFileSync(record, 'utf8')) as { pid: number; url: string };
    assert.equal(await fetch(`${early.url}/health`).then(() => 'up', () => 'not yet'), 'not yet', 'recorded before it is healthy');
    const second = await launcher().launch(req());
    const a = await first;
    assert.equal(second.adopted, true);
    assert.equal(pidOf(second.where), early.pid);
    assert.equal(pidOf(a.where), early.pid);
  });

  it('a record of a dead server is dropped and the model started again', async function () {
    const a = await launcher().launch(req());
    process.kill(-pidOf(a.where), 'SIGKILL');
    for (let i = 0; i < 100 && processGroupAlive(pidOf(a.where)); i++) await sleep(50);
    const b = await launcher().launch(req());
    assert.equal(b.adopted, false);
    assert.notEqual(pidOf(b.where), pidOf(a.where));
  });

  it('a record whose pid is another program is neither adopted nor stopped', async function () {
    mkdirSync(stateDir, { recursive: true });
    const id = 'demo-bbbbbbbbbbbb-quantized';
    // This test process's own pid: alive, but not a server of that port and model.
    writeFileSync(path.join(stateDir, `${id}.json`), JSON.stringify({ id, pid: process.pid, port: 1, url: 'http://127.0.0.1:1', servedModelName: id, modelDir: model, startedAt: new Date().toISOString(), host: os.hostname() }));
    assert.deepEqual(await launcher().list(), [], 'not listed, and its record removed');
    assert.equal(existsSync(path.join(stateDir, `${id}.json`)), false);
    const m = await launcher().launch(req(id));
    assert.notEqual(pidOf(m.where), process.pid);
  });

  it('stop ends the whole process group and forgets it; stopping again, or an unknown id, is fine', async function () {
    const l = launcher({ FAKE_VLLM_CHILD: '1' });
    const a = await l.launch(req());
    const pid = pidOf(a.where);
    for (let i = 0; i < 100 && groupMembers(pid).length === 0; i++) await sleep(50);
    assert.equal(groupMembers(pid).length, 1, 'the stand-in started its engine child');
    await l.stop(a.id);
    assert.equal(processGroupAlive(pid), false);
    assert.equal(existsSync(path.join(stateDir, `${a.id}.json`)), false);
    await l.stop(a.id);
    await l.stop('never-launched');
  });

  it('a server whose leader died but whose engine lives on is stopped when its record is found', async function () {
    const a = await launcher({ FAKE_VLLM_CHILD: '1' }).launch(req());
    const pid = pidOf(a.where);
    for (let i = 0; i < 100 && groupMembers(pid).length === 0; i++) await sleep(50);
    const [engine] = groupMembers(pid);
    process.kill(pid, 'SIGKILL'); // the leader only
    for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(50);
    assert.ok(processGroupAlive(pid), 'the engine outlived its leader');
    const b = await launcher().launch(req());
    assert.equal(b.adopted, false);
    assert.equal(existsSync(`/proc/${engine}`) && groupMembers(pid).includes(engine!), false, 'the orphaned engine was stopped');
  });

  it('refuses a bad id, and an id already naming another model', async function () {
    await assert.rejects(launcher().launch(req('Bad Id')), (e: unknown) => e instanceof ConfigError && /launch id 'Bad Id'/.test(e.message));
    await launcher().launch(req());
    const other = path.join(home.dir, 'other');
    mkdirSync(other);
    writeFileSync(path.join(other, 'config.json'), '{}');
    await assert.rejects(launcher().launch({ ...req(), modelDir: other }), (e: unknown) => e instanceof ForgelineError && e.terminal && /an id names one model/.test(e.message));
  });
});
