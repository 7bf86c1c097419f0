import assert from 'node:assert/strict';
import { durationMs, GPU_HEARTBEAT_THROTTLE_MS, ReleaseSpecSchema } from '../../src/contracts/specs/release-spec';
import { validateSpec } from '../../src/contracts/validate';

const minimal = { model: 'support-bot', base: { path: '/models/base' }, dataset: { uri: 'artifact://datasets/x/', sha256: 'a'.repeat(64) } };

describe('ReleaseSpecSchema gpu section: heartbeat and progress timeouts', function () {
  it('defaults: a 2 m heartbeat timeout and a 30 m progress timeout', function () {
    const v = validateSpec(ReleaseSpecSchema, minimal);
    assert.ok(v.ok);
    assert.deepEqual(v.value.gpu, { pool: 'cpu', count: 1, heartbeatTimeout: '2m', progressTimeout: '30m' });
    assert.equal(durationMs(v.value.gpu.progressTimeout), 30 * 60_000);
  });

  it('refuses a heartbeat timeout the worker\'s heartbeat throttle could miss, naming gpu.heartbeatTimeout', function () {
    for (const heartbeatTimeout of ['3s', '8s']) {
      const v = validateSpec(ReleaseSpecSchema, { ...minimal, gpu: { heartbeatTimeout } });
      assert.ok(!v.ok, heartbeatTimeout);
      assert.match(v.problems.join('\n'), /^gpu\.heartbeatTimeout: expected at least 10s: GPU workers send heartbeats at most every 3s/m);
    }
    assert.ok(validateSpec(ReleaseSpecSchema, { ...minimal, gpu: { heartbeatTimeout: '10s' } }).ok);
    assert.ok(10_000 >= 3 * GPU_HEARTBEAT_THROTTLE_MS);
  });

  it('checks progressTimeout like every duration', function () {
    const v = validateSpec(ReleaseSpecSchema, { ...minimal, gpu: { progressTimeout: 'forever' } });
    assert.ok(!v.ok);
    assert.match(v.problems.join('\n'), /^gpu\.progressTimeout: expected a duration such as 90s, 30m, 24h or 7d/m);
  });
});
