import assert from 'node:assert/strict';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createAdmissionActivities } from '../../activities/admission/leases';
import { ErrorType } from '../../src/contracts/errors';
import type { LeaseGrant, LeaseRequest } from '../../src/contracts/quota';
import { ForgelineError } from '../../src/ports/errors';
import type { GpuAdmission } from '../../src/ports/gpu-admission';

const REQ: LeaseRequest = { leaseId: 'release/m/abc/train/1', team: 'search', pool: 'h200', gpus: 2, holder: { workflowId: 'release/m/abc', stage: 'train' } };
const GRANT: LeaseGrant = { leaseId: REQ.leaseId, pool: 'h200', team: 'search', gpus: 2, borrowed: 0, grantedAt: 1 };

/** A GpuAdmission whose acquire is `acquire`; the rest unused. */
function fake(acquire: GpuAdmission['acquire']): GpuAdmission {
  const unused = () => Promise.reject(new Error('unused'));
  return { acquire, release: unused, closedHolders: unused, status: unused, apply: unused };
}

describe('lease activities (MockActivityEnvironment, fake admission port)', function () {
  it('acquireGpuLease: fills the request’s defaults, heartbeats while it waits, returns the grant', async function () {
    const seen: unknown[] = [];
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const { acquireGpuLease } = createAdmissionActivities({
      admission: fake(async (req, o) => {
        seen.push(req);
        o?.onWait?.();
        o?.onWait?.();
        return GRANT;
      }),
    });
    assert.deepEqual(await env.run(acquireGpuLease, REQ), GRANT);
    assert.deepEqual(seen, [{ ...REQ, priority: 0, preemptible: true }]);
    assert.equal(beats.length, 3, 'one heartbeat at the start, one per wait tick');
  });

  it('a malformed request fails at once, non-retryable, naming the field', async function () {
    const { acquireGpuLease } = createAdmissionActivities({ admission: fake(() => assert.fail('must not be called')) });
    const err = await new MockActivityEnvironment().run(acquireGpuLease, { ...REQ, gpus: 0, team: 'Search' }).catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure && err.nonRetryable, String(err));
    assert.equal(err.type, ErrorType.InvalidSpec);
    assert.match(err.message, /invalid lease request: team, gpus/);
  });

  it('a refusal by the admission workflow is terminal and keeps its type; a transport error is retried', async function () {
    const refused = createAdmissionActivities({ admission: fake(() => Promise.reject(new ForgelineError(ErrorType.InvalidSpec, 'team search has no quota on pool h200', true))) });
    const err = await new MockActivityEnvironment().run(refused.acquireGpuLease, REQ).catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure && err.nonRetryable && err.type === ErrorType.InvalidSpec, String(err));
    const flaky = createAdmissionActivities({ admission: fake(() => Promise.reject(new Error('14 UNAVAILABLE: connection refused'))) });
    const err2 = await new MockActivityEnvironment().run(flaky.acquireGpuLease, REQ).catch((e: unknown) => e);
    assert.ok(!(err2 instanceof ApplicationFailure), 'retryable: a plain error');
    assert.match(String(err2), /UNAVAILABLE/);
  });

  it('cancellation stops the wait with a CancelledFailure', async function () {
    const env = new MockActivityEnvironment();
    const { acquireGpuLease } = createAdmissionActivities({
      admission: fake(
        (_req, o) =>
          new Promise<LeaseGrant>((_resolve, reject) => {
            o!.signal!.addEventListener('abort', () => reject(new Error('aborted')));
          }),
      ),
    });
    const running = env.run(acquireGpuLease, REQ).catch((e: unknown) => e);
    setTimeout(() => env.cancel(), 50);
    const err = await running;
    assert.ok(err instanceof CancelledFailure, String(err));
    assert.match(err.message, /stopped waiting for lease release\/m\/abc\/train\/1/);
  });

  it('without a quota file on the control worker every lease call fails saying so', async function () {
    const { acquireGpuLease, releaseGpuLease } = createAdmissionActivities({});
    for (const call of [() => new MockActivityEnvironment().run(acquireGpuLease, REQ), () => new MockActivityEnvironment().run(releaseGpuLease, { pool: 'h200', leaseId: 'x' })]) {
      const err = await call().catch((e: unknown) => e);
      assert.ok(err instanceof ApplicationFailure && err.nonRetryable && err.type === ErrorType.InvalidConfig, String(err));
      assert.match(err.message, /set FORGELINE_QUOTAS/);
    }
  });
});
