/**
 * Removing an upstream from our gateway's routing table (what a release does once a quantized
 * candidate's own server is stopped): DELETE /admin/upstreams/<name> over the admin API, and
 * GatewayTrafficRouter.deleteUpstream over it. Real gateway in this process, no upstream needed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GatewayTrafficRouter } from '../../src/adapters/gateway-router';
import type { RunningGateway } from '../../src/gateway/server';
import { ForgelineError } from '../../src/ports/errors';
import { ADMIN_TOKEN, admin, call, gateway } from '../helpers/gateway-harness';

describe('gateway: removing an upstream (integration: real gateway, admin API)', function () {
  this.timeout(30_000);
  let dir: string;
  let gw: RunningGateway;
  let router: GatewayTrafficRouter;

  beforeEach(async function () {
    dir = await mkdtemp(path.join(os.tmpdir(), 'forgeline-gw-upstreams-'));
    gw = await gateway({ stateDir: dir });
    router = new GatewayTrafficRouter({ url: gw.url, adminToken: ADMIN_TOKEN });
    await router.setUpstream('vllm', ['http://127.0.0.1:9']);
    await router.setUpstream('demo-aaaaaaaaaaaa-quantized', ['http://127.0.0.1:10']);
    await router.setRoute('demo', [
      { version: 'demo@base', upstream: 'vllm', model: 'base', weight: 90 },
      { version: 'demo@aaaaaaaaaaaa-quantized', upstream: 'demo-aaaaaaaaaaaa-quantized', model: 'demo-aaaaaaaaaaaa-quantized', weight: 10 },
    ]);
  });
  afterEach(async function () {
    await gw?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses to remove an upstream a route still uses, naming the route, and keeps the table', async function () {
    const before = await router.getTable();
    const res = await admin(gw, 'DELETE', '/admin/upstreams/demo-aaaaaaaaaaaa-quantized', {});
    assert.equal(res.status, 400);
    assert.match(res.json.error.message, /^upstream: 'demo-aaaaaaaaaaaa-quantized' is still used by route\(s\) demo: move their targets off it first/);
    assert.deepEqual(await router.getTable(), before);
    await assert.rejects(router.deleteUpstream('demo-aaaaaaaaaaaa-quantized'), (e: unknown) => e instanceof ForgelineError && e.terminal && /still used by route\(s\) demo/.test(e.message));
  });

  it('removes it once no route uses it (by compare-and-swap); removing it again changes nothing; a bad token is 401', async function () {
    let t = await router.getTable();
    await router.setRoute('demo', [{ version: 'demo@base', upstream: 'vllm', model: 'base', weight: 100 }], { expectedVersion: t.version });
    assert.equal((await call(`${gw.url}/admin/upstreams/demo-aaaaaaaaaaaa-quantized`, 'DELETE', 'wrong-token', {})).status, 401);
    t = await router.getTable();
    const stale = await admin(gw, 'DELETE', '/admin/upstreams/demo-aaaaaaaaaaaa-quantized', {}, { 'if-match': `"${t.version - 1}"` });
    assert.equal(stale.status, 409);
    const after = await router.deleteUpstream('demo-aaaaaaaaaaaa-quantized', { by: 'test', reason: 'server stopped' });
    assert.deepEqual(Object.keys(after.upstreams), ['vllm']);
    assert.equal(after.version, t.version + 1);
    assert.equal(after.updatedBy, 'test');
    const again = await router.deleteUpstream('demo-aaaaaaaaaaaa-quantized');
    assert.equal(again.version, after.version, 'already gone: nothing written');
    assert.equal((await admin(gw, 'DELETE', '/admin/upstreams/no-such', {})).status, 400);
  });
});
