import assert from 'node:assert/strict';
import { GpuAllocator } from '../../src/adapters/gpu-allocator';

describe('GpuAllocator (device assignment on a GPU worker)', function () {
  it('gives cpu leases on pool cpu', async function () {
    const a = GpuAllocator.forPool('cpu', 1);
    const lease = await a.acquire();
    assert.deepEqual([lease.device, lease.indices], ['cpu', []]);
  });

  it('hands each concurrent job its own GPU and reuses released ones', async function () {
    const a = GpuAllocator.forPool('h200', 2);
    const x = await a.acquire();
    const y = await a.acquire();
    assert.deepEqual([x.indices, y.indices], [[0], [1]]);
    let third: number[] | undefined;
    const pending = a.acquire().then((l) => (third = l.indices));
    await new Promise((r) => setImmediate(r));
    assert.equal(third, undefined, 'waits while both GPUs are busy');
    y.release();
    y.release(); // idempotent
    await pending;
    assert.deepEqual(third, [1]);
  });

  it('serves a multi-GPU job first come, first served, and refuses more GPUs than the worker owns', async function () {
    const a = GpuAllocator.forPool('h200', 4, '4,5,6,7');
    const one = await a.acquire(1);
    const order: string[] = [];
    const big = a.acquire(4).then((l) => (order.push('big'), l));
    const small = a.acquire(1).then((l) => (order.push('small'), l));
    one.release();
    const b = await big;
    assert.deepEqual(b.indices, [4, 5, 6, 7]);
    b.release();
    await small;
    assert.deepEqual(order, ['big', 'small']);
    await assert.rejects(a.acquire(5), /gpu.count=5: this worker owns 4 GPU\(s\)/);
  });

  it('gives up a waiting place on abort, letting the next job in', async function () {
    const a = GpuAllocator.forPool('h200', 2);
    const held = await a.acquire(1);
    const controller = new AbortController();
    const big = a.acquire(2, controller.signal).catch((e: unknown) => e);
    const small = a.acquire(1);
    assert.equal(a.waiting, 2);
    controller.abort(new Error('cancelled'));
    assert.match(String(await big), /cancelled/);
    assert.deepEqual((await small).indices, [1], 'the job behind the aborted one got the free GPU');
    assert.equal(a.waiting, 0);
    held.release();
    await assert.rejects(a.acquire(1, AbortSignal.abort(new Error('already'))), /already/);
  });
});
