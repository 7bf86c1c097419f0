import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../../src/cli/program';
import { loadConfig } from '../../src/config/load';
import { AutoscalePoolSchema } from '../../src/config/schema';
import { ConfigError } from '../../src/ports/errors';
import { Autoscaler, decideScale, initialScaleState, parseNvidiaSmiUtilization, type PoolScalePolicy, type PoolScaleState, type PoolSignal, type ScaledWorker } from '../../src/fleet/autoscaler';

const policy = (p: Partial<PoolScalePolicy> = {}): PoolScalePolicy => AutoscalePoolSchema.parse({ max: 4, targetQueueSize: 2, cooldownSeconds: 60, stabilizationSeconds: 30, ...p });
const sig = (backlog: number, extra: Partial<PoolSignal> = {}): PoolSignal => ({ backlog, backlogAgeSeconds: backlog ? 5 : 0, ...extra });
const S = 1000;

/** Feed `steps` (seconds since the start, current workers, signal) through decideScale; the desired counts. */
function run(p: PoolScalePolicy, steps: Array<[number, number, PoolSignal]>): number[] {
  let state: PoolScaleState = initialScaleState();
  return steps.map(([t, current, signal]) => {
    const r = decideScale(p, state, current, signal, t * S);
    state = r.state;
    return r.decision.desired;
  });
}

describe('decideScale (KEDA Temporal scaler + HPA rules)', function () {
  const single: Array<{ name: string; policy: PoolScalePolicy; current: number; signal: PoolSignal; desired: number; reason: RegExp }> = [
    { name: 'idle pool at zero stays at zero', policy: policy(), current: 0, signal: sig(0), desired: 0, reason: /stays at zero/ },
    { name: 'backlog at the activation threshold does not activate', policy: policy({ activationTargetQueueSize: 3 }), current: 0, signal: sig(3), desired: 0, reason: /activation threshold 3/ },
    { name: 'backlog above the activation threshold starts ceil(backlog/target)', policy: policy({ activationTargetQueueSize: 3 }), current: 0, signal: sig(5), desired: 3, reason: /ceil\(5\/2\) = 3/ },
    { name: 'one queued task starts one worker', policy: policy(), current: 0, signal: sig(1), desired: 1, reason: /ceil\(1\/2\) = 1/ },
    { name: 'clamped to max', policy: policy(), current: 1, signal: sig(50), desired: 4, reason: /within \[1, 4\]: 4/ },
    { name: 'min > 0 holds min with no backlog', policy: policy({ min: 2 }), current: 0, signal: sig(0), desired: 2, reason: /within \[2, 4\]: 2/ },
    { name: 'never-active pool with workers scales to zero at once', policy: policy(), current: 2, signal: sig(0), desired: 0, reason: /for ever.*scale to zero/ },
  ];
  for (const c of single) {
    it(c.name, function () {
      const { decision } = decideScale(c.policy, initialScaleState(), c.current, c.signal, 1000 * S);
      assert.equal(decision.desired, c.desired, decision.reason);
      assert.match(decision.reason, c.reason);
    });
  }

  const sequences: Array<{ name: string; policy: PoolScalePolicy; steps: Array<[number, number, PoolSignal]>; desired: number[] }> = [
    {
      name: 'scale-up is immediate, scale-down waits for the stabilization window',
      policy: policy({ stabilizationSeconds: 30 }),
      // t=0 backlog 8 → 4; drains at t=10: still 4 (4 was recommended within 30 s) until t=31.
      steps: [[0, 0, sig(8)], [10, 4, sig(2)], [20, 4, sig(2)], [31, 4, sig(2)], [41, 1, sig(2)]],
      desired: [4, 4, 4, 1, 1],
    },
    {
      name: 'active pool keeps one worker through the cooldown, then scales to zero',
      policy: policy({ cooldownSeconds: 60, stabilizationSeconds: 0 }),
      steps: [[0, 0, sig(1)], [30, 1, sig(0)], [59, 1, sig(0)], [60, 1, sig(0)], [70, 0, sig(0)]],
      desired: [1, 1, 1, 0, 0],
    },
    {
      name: 'a new burst inside the cooldown restarts it',
      policy: policy({ cooldownSeconds: 60, stabilizationSeconds: 0 }),
      steps: [[0, 0, sig(1)], [50, 1, sig(1)], [100, 1, sig(0)], [110, 1, sig(0)]],
      desired: [1, 1, 1, 0],
    },
    {
      name: 'busy GPUs hold a scale-down; idle ones let it happen',
      policy: policy({ stabilizationSeconds: 0, busyUtilizationPercent: 50 }),
      steps: [[0, 0, sig(8)], [10, 4, sig(2, { gpuUtilizationPercent: 90 })], [20, 4, sig(2, { gpuUtilizationPercent: 10 })]],
      desired: [4, 4, 1],
    },
    {
      name: 'without a utilisation signal (CPU) the backlog alone decides',
      policy: policy({ stabilizationSeconds: 0, busyUtilizationPercent: 50 }),
      steps: [[0, 0, sig(8)], [10, 4, sig(2)]],
      desired: [4, 1],
    },
  ];
  for (const c of sequences) {
    it(c.name, function () {
      assert.deepEqual(run(c.policy, c.steps), c.desired);
    });
  }

  it('never leaves [min, max] whatever the signal', function () {
    const p = policy({ min: 1, max: 3, stabilizationSeconds: 5, cooldownSeconds: 5 });
    let state = initialScaleState();
    let current = 0;
    for (let t = 0; t < 500; t++) {
      const backlog = (t * 7919) % 13;
      const r = decideScale(p, state, current, sig(backlog), t * S);
      assert.ok(r.decision.desired >= 1 && r.decision.desired <= 3, `t=${t}: ${r.decision.desired}`);
      state = r.state;
      current = r.decision.desired;
    }
  });
});

describe('GPU utilisation signal', function () {
  it('averages nvidia-smi utilization.gpu over the GPUs that report it', function () {
    assert.equal(parseNvidiaSmiUtilization('90\n30\n'), 60);
    assert.equal(parseNvidiaSmiUtilization('100\n[N/A]\n'), 100);
    assert.equal(parseNvidiaSmiUtilization(''), undefined);
    assert.equal(parseNvidiaSmiUtilization('[Not Supported]\n'), undefined);
    // Recorded on a real H200 (test/fixtures/nvidia-smi/README.md): idle, then each busy sample.
    const fixture = (name: string) => readFileSync(path.join(__dirname, '../fixtures/nvidia-smi', name), 'utf8');
    assert.equal(parseNvidiaSmiUtilization(fixture('h200-idle.txt')), 0);
    for (const line of fixture('h200-busy-samples.txt').trim().split('\n')) assert.equal(parseNvidiaSmiUtilization(`${line}\n`), 100);
  });
});

describe('autoscale config', function () {
  it('reads FORGELINE_AUTOSCALE as JSON with KEDA-like defaults', function () {
    const cfg = loadConfig({ env: { FORGELINE_HOME: '/tmp/fl-as', FORGELINE_AUTOSCALE: '{"pools": {"cpu": {"max": 2}}}' }, cwd: '/tmp' });
    assert.deepEqual(cfg.autoscale, { intervalSeconds: 5, pools: { cpu: { min: 0, max: 2, targetQueueSize: 1, activationTargetQueueSize: 0, cooldownSeconds: 300, stabilizationSeconds: 300, gpusPerWorker: 1 } } });
  });

  it('names the field and the fix for bad values', function () {
    assert.throws(() => loadConfig({ env: { FORGELINE_AUTOSCALE: '{"pools": {"cpu": {"min": 3, "max": 2}}}' }, cwd: '/tmp' }), (e: Error) => e instanceof ConfigError && /autoscale\.pools\.cpu\.min.*expected min at most max/.test(e.message));
    assert.throws(() => loadConfig({ env: { FORGELINE_AUTOSCALE: '{"pools": {"cpu": {"max": 2, "targetQueue": 1}}}' }, cwd: '/tmp' }), (e: Error) => e instanceof ConfigError && /targetQueue/.test(e.message));
    assert.throws(() => loadConfig({ env: { FORGELINE_AUTOSCALE: 'pools: cpu' }, cwd: '/tmp' }), (e: Error) => e instanceof ConfigError && /FORGELINE_AUTOSCALE=.*expected a JSON object/.test(e.message));
  });
});

describe('forgeline autoscale status', function () {
  it('without autoscaled pools: a usage error saying how to configure them, before any connection', async function () {
    const sink = () => {
      const s = { text: '', isTTY: false, columns: 100, write: (chunk: string) => ((s.text += chunk), true) };
      return s;
    };
    const [stdout, stderr] = [sink(), sink()];
    const saved = process.env.FORGELINE_AUTOSCALE;
    delete process.env.FORGELINE_AUTOSCALE;
    try {
      // An address nothing listens on: reaching for it would be exit 1, not 2.
      const code = await withEnv({ TEMPORAL_ADDRESS: '127.0.0.1:1', FORGELINE_CONFIG: '' }, () => runCli(['autoscale', 'status'], { stdout, stderr }));
      assert.equal(code, 2, stderr.text);
      assert.match(stderr.text, /no autoscaled pools: set FORGELINE_AUTOSCALE/);
    } finally {
      if (saved !== undefined) process.env.FORGELINE_AUTOSCALE = saved;
    }
  });
});

async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('Autoscaler driver (fake signal and workers)', function () {
  it('starts and stops workers as decided, gracefully, and keeps them when the signal fails', async function () {
    const started: Array<{ stopped: number }> = [];
    const start = (): ScaledWorker => {
      const w = { stopped: 0 };
      started.push(w);
      let exit!: (c: number | null) => void;
      const exited = new Promise<number | null>((r) => (exit = r));
      return { pid: started.length, exited, stop: async () => { w.stopped++; exit(0); } };
    };
    let backlog: number | Error = 3;
    let now = 0;
    const lines: string[] = [];
    const a = new Autoscaler({
      client: undefined as never,
      namespace: 'default',
      pools: { p: policy({ max: 4, targetQueueSize: 1, cooldownSeconds: 10, stabilizationSeconds: 0 }) },
      start,
      log: (l) => lines.push(l),
      intervalMs: 1000,
      utilization: async () => undefined,
      backlog: async () => {
        if (backlog instanceof Error) throw backlog;
        return { backlog, backlogAgeSeconds: 1 };
      },
      now: () => now,
    });
    await a.tick();
    assert.equal(started.length, 3);
    backlog = new Error('unavailable');
    now = 20_000;
    await a.tick();
    assert.equal(a.status()[0]!.workers, 3, 'a failed read changes nothing');
    assert.match(a.status()[0]!.error ?? '', /unavailable/);
    backlog = 0;
    await a.tick();
    assert.equal(a.status()[0]!.workers, 0);
    assert.deepEqual(started.map((w) => w.stopped), [1, 1, 1]);
    assert.deepEqual(a.events.map((e) => [e.from, e.to]), [[0, 3], [3, 0]]);
    assert.ok(lines.some((l) => /gpu-p 3 → 0 worker\(s\): backlog 0: .*scale to zero/.test(l)), lines.join('\n'));
    await a.close();
  });

  it('does not restart a pool whose worker died on its own until a doubling wait has passed', async function () {
    const exits: Array<(code: number | null) => void> = [];
    let now = 0;
    const a = new Autoscaler({
      client: undefined as never,
      namespace: 'default',
      pools: { p: policy({ max: 1, targetQueueSize: 1, cooldownSeconds: 600 }) },
      start: () => {
        let exit!: (c: number | null) => void;
        const exited = new Promise<number | null>((r) => (exit = r));
        exits.push(exit);
        return { pid: exits.length, exited, stop: async () => exit(0) };
      },
      log: () => undefined,
      intervalMs: 1000,
      utilization: async () => undefined,
      backlog: async () => ({ backlog: 5, backlogAgeSeconds: 1 }),
      now: () => now,
    });
    const died = async () => {
      exits[exits.length - 1]!(1);
      await new Promise((r) => setImmediate(r));
    };
    await a.tick();
    assert.equal(exits.length, 1);
    await died();
    now = 1000;
    await a.tick();
    assert.equal(exits.length, 1, 'restarted at once');
    assert.match(a.status()[0]!.decision!.reason, /held for 1s after a worker exited on its own/);
    now = 2000;
    await a.tick();
    assert.equal(exits.length, 2, 'not restarted after 2 s');
    await died();
    now = 5000;
    await a.tick();
    assert.equal(exits.length, 2, 'the second wait is 4 s');
    now = 6000;
    await a.tick();
    assert.equal(exits.length, 3);
    await a.close();
  });
});
