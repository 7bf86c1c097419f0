import assert from 'node:assert/strict';
import type { ActivitySlotInfo, CustomSlotSupplier, SlotPermit } from '@temporalio/worker';
import { LocalGpuAllocator, parseVisibleDevices } from '../../src/adapters/gpu-allocator';

describe('LocalGpuAllocator (device assignment on a GPU worker)', function () {
  it('gives cpu leases on pool cpu', async function () {
    const a = LocalGpuAllocator.forPool('cpu', 1);
    const lease = await a.acquire();
    assert.deepEqual([lease.device, lease.indices], ['cpu', []]);
  });

  it('hands each concurrent job its own GPU and reuses released ones', async function () {
    const a = LocalGpuAllocator.forPool('h200', 2);
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
    const a = LocalGpuAllocator.forPool('h200', 4, '4,5,6,7');
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
    const a = LocalGpuAllocator.forPool('h200', 2);
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

  it("takes the worker's GPUs from CUDA_VISIBLE_DEVICES and refuses a value it cannot read", function () {
    assert.deepEqual(parseVisibleDevices(' 4, 6 '), [4, 6]);
    assert.equal(parseVisibleDevices(''), undefined);
    assert.throws(() => parseVisibleDevices('GPU-5f3a,1'), /CUDA_VISIBLE_DEVICES="GPU-5f3a,1": expected comma-separated GPU indices/);
    assert.throws(() => LocalGpuAllocator.forPool('h200', 4, '0,1'), /FORGELINE_GPU_COUNT=4, but CUDA_VISIBLE_DEVICES=0,1 names only 2 GPU\(s\)/);
    assert.equal(LocalGpuAllocator.forPool('h200', 2, '3,5,7').total, 2);
  });
});

describe('LocalGpuAllocator.slotSupplier (a GPU worker takes a task only when it has a GPU for it)', function () {
  const used = (s: CustomSlotSupplier<ActivitySlotInfo>, permit: SlotPermit) =>
    s.markSlotUsed({ slotInfo: { type: 'activity', activityType: 'trainAdapter' }, permit });
  const released = (s: CustomSlotSupplier<ActivitySlotInfo>, permit: SlotPermit, wasUsed = true) =>
    s.releaseSlot({ ...(wasUsed ? { slotInfo: { type: 'activity' as const, activityType: 'trainAdapter' } } : {}), permit });
  const ctx = { slotType: 'activity' as const, taskQueue: 'gpu-h200', workerIdentity: 'w', workerBuildId: '', isSticky: false };
  const tick = () => new Promise((r) => setImmediate(r));
  /** A reservation, and whether it has been granted yet. */
  function reserve(s: CustomSlotSupplier<ActivitySlotInfo>, signal = new AbortController().signal) {
    const state: { permit?: SlotPermit; promise: Promise<SlotPermit> } = { promise: s.reserveSlot(ctx, signal) };
    state.promise.then((p) => (state.permit = p), () => undefined);
    return state;
  }

  it('holds no other task while an 8-GPU job runs on an 8-GPU worker', async function () {
    const gpus = LocalGpuAllocator.forPool('h200', 8);
    const s = gpus.slotSupplier();
    const first = reserve(s);
    const second = reserve(s);
    await tick();
    assert.ok(first.permit, 'an idle worker polls');
    assert.equal(second.permit, undefined, 'one poll at a time');
    used(s, first.permit!);
    await tick();
    assert.equal(second.permit, undefined, 'a task that has not said how many GPUs it needs might need them all');
    const lease = await gpus.acquire(8);
    await tick();
    assert.equal(second.permit, undefined, 'no GPU is free: the worker does not poll');
    assert.equal(s.tryReserveSlot(ctx), null, 'nor takes an eager task');
    lease.release();
    released(s, first.permit!);
    await tick();
    assert.ok(second.permit, 'polls again once the job is done');
  });

  it('keeps polling for 1-GPU work while GPUs are free, and stops while a job waits for GPUs', async function () {
    const gpus = LocalGpuAllocator.forPool('h200', 2);
    const s = gpus.slotSupplier();
    const a = reserve(s);
    await tick();
    used(s, a.permit!);
    const leaseA = await gpus.acquire(1);
    const b = reserve(s);
    await tick();
    assert.ok(b.permit, 'one GPU is still free');
    used(s, b.permit!);
    const waiting = gpus.acquire(2); // needs both: waits for task a's GPU
    const c = reserve(s);
    await tick();
    assert.equal(c.permit, undefined, 'a task is waiting for GPUs: take nothing more');
    leaseA.release();
    released(s, a.permit!);
    const leaseB = await waiting;
    assert.deepEqual(leaseB.indices, [0, 1]);
    await tick();
    assert.equal(c.permit, undefined, 'every GPU is busy');
    leaseB.release();
    released(s, b.permit!);
    await tick();
    assert.ok(c.permit);
  });

  it('frees the slot of a task that ended before asking for GPUs, and of a poll that brought nothing', async function () {
    const gpus = LocalGpuAllocator.forPool('h200', 1);
    const s = gpus.slotSupplier();
    const a = reserve(s);
    await tick();
    released(s, a.permit!, false); // the poll timed out
    const b = reserve(s);
    await tick();
    used(s, b.permit!);
    const c = reserve(s);
    await tick();
    assert.equal(c.permit, undefined);
    released(s, b.permit!); // failed while downloading its inputs
    await tick();
    assert.ok(c.permit);
  });

  it("rejects an aborted reservation with the signal's reason (how the SDK stops polling at shutdown)", async function () {
    const gpus = LocalGpuAllocator.forPool('h200', 1);
    const s = gpus.slotSupplier();
    const a = reserve(s);
    await tick();
    const controller = new AbortController();
    const b = s.reserveSlot(ctx, controller.signal);
    const reason = new Error('shutting down');
    controller.abort(reason);
    await assert.rejects(b, (err) => err === reason);
    released(s, a.permit!, false);
    assert.ok(s.tryReserveSlot(ctx), 'the aborted reservation left no trace');
  });
});
