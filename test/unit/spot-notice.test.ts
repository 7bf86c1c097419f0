/**
 * The spot notice watcher (src/fleet/spot.ts) against local fakes of the AWS (IMDSv2), GCP and
 * Azure (Scheduled Events) metadata services that answer as the real ones do
 * (test/helpers/fake-imds.ts); and the preemption interceptor's choice of what becomes
 * WorkerPreempted.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/load';
import { ErrorType } from '../../src/contracts/errors';
import { SpotNoticeWatcher, spotShutdownGraceMs, WorkerPreemption, type SpotNotice, type SpotProvider } from '../../src/fleet/spot';
import { freePort } from '../helpers/processes';
import { configError } from '../helpers/failures';
import { type FakeMetadataServer, startFakeMetadataServer } from '../helpers/fake-imds';

describe('spot notice watcher (fake AWS, GCP and Azure metadata services)', function () {
  const servers: FakeMetadataServer[] = [];
  const start = async (provider: SpotProvider, vmName?: string) => {
    const s = await startFakeMetadataServer(provider, vmName);
    servers.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  describe('AWS IMDSv2', function () {
    it('404 is no notice; 200 {action, time} is one, with the time as its deadline; one token serves many polls', async function () {
      const imds = await start('aws');
      const watcher = new SpotNoticeWatcher({ provider: 'aws', metadataUrl: imds.url });
      assert.equal(await watcher.check(), undefined);
      assert.equal(await watcher.check(), undefined);
      const at = new Date(Math.floor(Date.now() / 1000) * 1000 + 120_000);
      imds.notify({ action: 'stop', at });
      const notice = await watcher.check();
      assert.ok(notice);
      assert.equal(notice.provider, 'aws');
      assert.equal(notice.action, 'stop');
      assert.equal(notice.deadline.toISOString(), at.toISOString());
      assert.match(notice.detail, /^AWS spot instance-action stop at /);
      assert.deepEqual(imds.requests, ['PUT /latest/api/token', ...Array(3).fill('GET /latest/meta-data/spot/instance-action')]);
    });

    it('asks for a new token when the service refuses an expired one (401), and renews before the TTL ends', async function () {
      const imds = await start('aws');
      let now = Date.now();
      const watcher = new SpotNoticeWatcher({ provider: 'aws', metadataUrl: imds.url, awsTokenTtlSeconds: 100, now: () => now });
      assert.equal(await watcher.check(), undefined);
      imds.expireTokens();
      assert.equal(await watcher.check(), undefined, 'a 401 is not an error: new token, same question');
      assert.deepEqual(imds.requests, ['PUT /latest/api/token', 'GET /latest/meta-data/spot/instance-action', 'GET /latest/meta-data/spot/instance-action', 'PUT /latest/api/token', 'GET /latest/meta-data/spot/instance-action']);
      imds.requests.length = 0;
      now += 89_000;
      await watcher.check();
      assert.deepEqual(imds.requests, ['GET /latest/meta-data/spot/instance-action'], 'within 90% of the TTL the token is reused');
      now += 2_000;
      await watcher.check();
      assert.deepEqual(imds.requests.slice(1), ['PUT /latest/api/token', 'GET /latest/meta-data/spot/instance-action'], 'after 90% of it, renewed');
    });

    it('an endpoint error fails one check, naming the request and status; a bad TTL is refused at construction', async function () {
      const imds = await start('aws');
      const watcher = new SpotNoticeWatcher({ provider: 'aws', metadataUrl: imds.url });
      imds.failNext(1, 500);
      await assert.rejects(watcher.check(), /PUT http:\/\/127\.0\.0\.1:\d+\/latest\/api\/token: unexpected HTTP 500 \("injected failure"\)/);
      assert.equal(await watcher.check(), undefined);
      imds.failNext(1, 503);
      await assert.rejects(watcher.check(), /GET .*\/latest\/meta-data\/spot\/instance-action: unexpected HTTP 503/);
      assert.throws(() => new SpotNoticeWatcher({ provider: 'aws', awsTokenTtlSeconds: 30_000 }), /awsTokenTtlSeconds: expected a whole number of seconds in 1\.\.21600, got 30000/);
    });

    it('polling: errors (a 500, nobody listening) are logged and retried, never fatal; one notice, then it stops', async function () {
      const imds = await start('aws');
      const errors: string[] = [];
      imds.failNext(3, 500);
      const watcher = new SpotNoticeWatcher({ provider: 'aws', metadataUrl: imds.url, pollMs: 20, onError: (m) => errors.push(m) }).start();
      let seen: SpotNotice | undefined;
      void watcher.notice.then((n) => (seen = n));
      while (imds.requests.length < 6) await sleep(10);
      assert.equal(seen, undefined);
      imds.notify();
      const notice = await watcher.notice;
      assert.equal(notice.action, 'terminate');
      assert.ok(Math.abs(notice.deadline.getTime() - (Date.now() + 120_000)) < 5_000, 'two minutes from now');
      assert.match(errors[0]!, /^spot \(aws\): could not read the preemption notice \(PUT .*: unexpected HTTP 500 .*\); trying again every 0\.02 s$/);
      assert.equal(errors.filter((e) => e.includes('could not read')).length, 1, `the same error is logged once, not once per poll: ${errors.join(' | ')}`);
      assert.match(errors.at(-1)!, /the metadata endpoint .* answers again/);
      const asked = imds.requests.length;
      await sleep(100);
      assert.equal(imds.requests.length, asked, 'no polling after the notice');

      const port = await freePort();
      const refused: string[] = [];
      const nobody = new SpotNoticeWatcher({ provider: 'aws', metadataUrl: `http://127.0.0.1:${port}`, pollMs: 20, onError: (m) => refused.push(m) }).start();
      await sleep(150);
      nobody.stop();
      assert.equal(refused.length, 1, refused.join(' | '));
      assert.match(refused[0]!, /PUT http:\/\/127\.0\.0\.1:\d+\/latest\/api\/token: ECONNREFUSED/);
    });
  });

  describe('GCP', function () {
    it('FALSE is no notice; TRUE is one, 30 s from when it was seen; a wrong answer is an error', async function () {
      const md = await start('gcp');
      const watcher = new SpotNoticeWatcher({ provider: 'gcp', metadataUrl: md.url });
      assert.equal(await watcher.check(), undefined);
      md.notify();
      const before = Date.now();
      const notice = await watcher.check();
      assert.ok(notice);
      assert.equal(notice.action, 'preempted');
      const lead = notice.deadline.getTime() - notice.detectedAt.getTime();
      assert.equal(lead, 30_000);
      assert.ok(notice.detectedAt.getTime() >= before);
      assert.match(notice.detail, /^GCP instance preempted/);
      md.failNext(1, 403);
      await assert.rejects(watcher.check(), /instance\/preempted: unexpected HTTP 403/);
    });
  });

  describe('Azure Scheduled Events', function () {
    it('only a Preempt of this VM is a notice, due at its NotBefore; other events and other VMs are not', async function () {
      const md = await start('azure', 'gpu-vm-7');
      const watcher = new SpotNoticeWatcher({ provider: 'azure', metadataUrl: md.url });
      assert.equal(await watcher.check(), undefined);
      md.addEvent({ EventType: 'Reboot' });
      md.addEvent({ EventType: 'Preempt', Resources: ['gpu-vm-8'] });
      assert.equal(await watcher.check(), undefined);
      const at = new Date(Math.floor(Date.now() / 1000) * 1000 + 30_000);
      md.notify({ at });
      const notice = await watcher.check();
      assert.ok(notice);
      assert.equal(notice.action, 'Preempt');
      assert.equal(notice.deadline.toISOString(), at.toISOString());
      assert.match(notice.detail, /^Azure scheduled event [0-9a-f]+ Preempt of gpu-vm-7 \(Scheduled\), not before /);
      assert.equal(md.requests.filter((r) => r.startsWith('GET /metadata/instance/compute/name')).length, 1, 'the VM name is read once');
    });

    it('a Preempt already started (NotBefore empty) is due 30 s after it was seen', async function () {
      const md = await start('azure');
      md.addEvent({ EventType: 'Preempt', EventStatus: 'Started', NotBefore: '' });
      const notice = await new SpotNoticeWatcher({ provider: 'azure', metadataUrl: md.url }).check();
      assert.ok(notice);
      assert.equal(notice.deadline.getTime() - notice.detectedAt.getTime(), 30_000);
    });
  });

  it('the grace fits the notice: the configured one, capped to what the shortest notice leaves', function () {
    assert.equal(spotShutdownGraceMs(30_000, 'aws', 5_000), 30_000);
    assert.equal(spotShutdownGraceMs(300_000, 'aws', 5_000), 102_000);
    assert.equal(spotShutdownGraceMs(30_000, 'gcp', 5_000), 12_000);
    assert.equal(spotShutdownGraceMs(30_000, 'azure', 5_000), 12_000);
    assert.equal(spotShutdownGraceMs(0, 'gcp', 5_000), 0);
  });
});

describe('WorkerPreemption: which failures become WorkerPreempted', function () {
  const notice: SpotNotice = { provider: 'aws', action: 'terminate', detectedAt: new Date(), deadline: new Date(Date.now() + 100_000), detail: 'AWS spot instance-action terminate at 2026-12-03T10:00:00.000Z' };
  const run = async (p: WorkerPreemption, fail: unknown, abortWith?: unknown) => {
    const controller = new AbortController();
    if (abortWith !== undefined) controller.abort(abortWith);
    const ctx = { info: { activityType: 'trainAdapter', attempt: 1, workflowExecution: { workflowId: 'release/x/1', runId: 'r' } }, cancellationSignal: controller.signal };
    const inbound = p.interceptor(ctx as never).inbound!;
    return inbound.execute!({ args: [], headers: {} }, () => Promise.reject(fail)).then(
      () => assert.fail('expected a failure'),
      (err: unknown) => err,
    );
  };

  it('after a notice: a preempted recipe and a worker-shutdown cancellation, retryably, naming the notice', async function () {
    const logged: string[] = [];
    const p = new WorkerPreemption((l) => logged.push(l));
    p.notice = notice;
    const preempted = (await run(p, ApplicationFailure.retryable('train: recipe train stopped because this worker is shutting down', 'RecipePreempted'))) as ApplicationFailure;
    assert.ok(preempted instanceof ApplicationFailure);
    assert.equal(preempted.type, ErrorType.WorkerPreempted);
    assert.equal(preempted.nonRetryable, false);
    assert.equal(preempted.message, `train: recipe train stopped because this worker is shutting down; worker preempted: ${notice.detail}`);
    const shutdown = (await run(p, new CancelledFailure('WORKER_SHUTDOWN'), new CancelledFailure('WORKER_SHUTDOWN'))) as ApplicationFailure;
    assert.equal(shutdown.type, ErrorType.WorkerPreempted);
    assert.match(logged[0]!, /trainAdapter of release\/x\/1 \(attempt 1\) failed retryably as WorkerPreempted/);
  });

  it('passes through: anything without a notice, terminal failures, other faults, and cancellations the server asked for', async function () {
    const p = new WorkerPreemption(() => undefined);
    const recipe = ApplicationFailure.retryable('stopped', 'RecipePreempted');
    assert.equal(await run(p, recipe), recipe, 'SIGTERM without a notice keeps RecipePreempted');
    p.notice = notice;
    const terminal = ApplicationFailure.nonRetryable('bad spec', ErrorType.InvalidSpec);
    assert.equal(await run(p, terminal), terminal);
    const crashed = ApplicationFailure.retryable('OOM', 'RecipeCrashed');
    assert.equal(await run(p, crashed), crashed);
    const aborted = new CancelledFailure('CANCELLED');
    assert.equal(await run(p, aborted, aborted), aborted);
    assert.deepEqual(p.runningAttempts(), []);
  });
});

describe('config: worker.spot (FORGELINE_SPOT_*)', function () {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-cfg-spot-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('off unless a provider is set; then polls every 5 s at the provider\'s own endpoint unless told otherwise', function () {
    assert.equal(loadConfig({ env: {}, cwd: dir }).worker.spot, undefined);
    assert.deepEqual(loadConfig({ env: { FORGELINE_SPOT_PROVIDER: 'gcp' }, cwd: dir }).worker.spot, { provider: 'gcp', pollSeconds: 5 });
    assert.deepEqual(loadConfig({ env: { FORGELINE_SPOT_PROVIDER: 'aws', FORGELINE_SPOT_METADATA_URL: 'http://127.0.0.1:9999', FORGELINE_SPOT_POLL_SECONDS: '0.5' }, cwd: dir }).worker.spot, {
      provider: 'aws',
      metadataUrl: 'http://127.0.0.1:9999',
      pollSeconds: 0.5,
    });
  });

  it('names each bad value and what it expects', function () {
    const msg = configError(() => loadConfig({ env: { FORGELINE_SPOT_PROVIDER: 'oracle', FORGELINE_SPOT_METADATA_URL: 'ftp://x', FORGELINE_SPOT_POLL_SECONDS: '600' }, cwd: dir }));
    assert.match(msg, /FORGELINE_SPOT_PROVIDER="oracle": expected aws, gcp or azure/);
    assert.match(msg, /FORGELINE_SPOT_METADATA_URL="ftp:\/\/x": expected an http\(s\) base URL/);
    assert.match(msg, /FORGELINE_SPOT_POLL_SECONDS="600": expected at most 60 seconds/);
    assert.match(configError(() => loadConfig({ env: { FORGELINE_SPOT_METADATA_URL: 'http://127.0.0.1:9' }, cwd: dir })), /FORGELINE_SPOT_PROVIDER=undefined: expected aws, gcp or azure \(set FORGELINE_SPOT_PROVIDER with FORGELINE_SPOT_METADATA_URL\)/);
  });
});
