/**
 * Serving benchmark (part of `npm run bench`; alone: `npx tsx bench/serving.ts`).
 *
 * Output tokens per second of the real vLLM server on this machine's CPU (the vLLM venv that
 * scripts/bootstrap installs, with our LoRA fix), for the same load on:
 *   - lora server, base:     the base model, server started with runtime LoRA, requests to the base;
 *   - lora server, 1 adapter: the same server, every request to adapter a (r=8, all linear layers);
 *   - lora server, 2 adapters: the same server, requests alternating adapters a and b (r=16);
 *   - base server:           the base model on a server without LoRA (the peer of the two below);
 *   - w4a16 server:          base + adapter a merged and quantized by our quantize recipe (GPTQ,
 *                            4 bits, group 32, compressed-tensors), served as its own model.
 * The model is `FORGELINE_BENCH_SERVING_SIZE`: default 40m (a ~42M-parameter random Llama,
 * test/helpers/vllm_fixture.py's bench shape, bf16; `0.5b` is the 0.48B shape of
 * forgeline_recipes/tiny.py, a few tokens/s on 2 shared cores; `tiny` is all overhead). All servers
 * use bf16 (vLLM's CPU int4 kernel takes bf16 or fp16 activations), VLLM_CPU_KVCACHE_SPACE=2; the
 * three are up at once (started one after the other) and every scenario runs once per round
 * (`FORGELINE_BENCH_SERVING_ROUNDS`, default 3), the order rotating each round, so the shared
 * machine's load falls on all alike. Load per scenario and round: `FORGELINE_BENCH_SERVING_REQUESTS`
 * requests (default 16) of 64 new tokens (ignore_eos, greedy) from the tiny-instruct eval prompts,
 * `FORGELINE_BENCH_SERVING_CONCURRENCY` in flight (default 8), after a warm-up; tokens/s =
 * completion tokens / wall time, and the server group's CPU time per token (user + system, from
 * /proc; less sensitive to the load); the load average before and after each run is recorded.
 *
 * Work files (models, adapters, quantized model) go to bench/.tmp/serving-<size>/ and are reused.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { VllmServingBackend } from '../src/adapters/vllm-backend';
import { startVllm, vllmPython, type StartVllmOptions, type VllmServer } from '../src/adapters/vllm-process';
import { REPO_ROOT } from '../src/config/load';
import { round } from './measure';

const SIZE = process.env.FORGELINE_BENCH_SERVING_SIZE ?? '40m';
const REQUESTS = Number(process.env.FORGELINE_BENCH_SERVING_REQUESTS ?? 16);
const ROUNDS = Number(process.env.FORGELINE_BENCH_SERVING_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.FORGELINE_BENCH_SERVING_CONCURRENCY ?? 8);
const NEW_TOKENS = 64;
const KV_GIB = 2;

const load = () => os.loadavg().map((x) => round(x, 2));
const log = (line: string) => console.log(`bench serving: ${line}`);

function mainVenvPython(): string {
  return path.join(process.env.FORGELINE_VENV || path.join(REPO_ROOT, '.venv'), 'bin', 'python');
}

function python(args: string[]): string {
  return execFileSync(mainVenvPython(), args, { cwd: REPO_ROOT, env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' }, encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'inherit'] });
}

/** Base model, two adapters and the W4A16 candidate, made once per size. */
function prepare(work: string): { base: string; a: string; b: string; w4a16: string; quantize: Record<string, unknown> } {
  const fixture = path.join(work, 'fixture');
  if (!existsSync(path.join(fixture, 'adapter-b', 'adapter_config.json'))) {
    log(`building the ${SIZE} model and two LoRA adapters in ${fixture}`);
    python([path.join(REPO_ROOT, 'test', 'helpers', 'vllm_fixture.py'), 'models', '--size', SIZE, '--no-reference', '--out', fixture]);
  }
  const qOut = path.join(work, 'quantize');
  const resultFile = path.join(work, 'quantize-result.json');
  if (!existsSync(resultFile)) {
    log('quantizing base + adapter a (GPTQ, 4 bits, group 32) with workers/recipes/quantize.py');
    const spec = path.join(work, 'quantize-spec.json');
    writeFileSync(
      spec,
      JSON.stringify({ base_model: path.join(fixture, 'base'), adapter: path.join(fixture, 'adapter-a'), dataset_dir: path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct'), method: 'gptq', bits: 4, group_size: 32, calibration_samples: 32, device: 'cpu', seed: 0 }),
    );
    const out = python([path.join(REPO_ROOT, 'workers', 'recipes', 'quantize.py'), '--spec', spec, '--out', qOut]);
    const result = out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event?: string; result?: Record<string, unknown> })
      .find((e) => e.event === 'result')?.result;
    if (!result) throw new Error(`quantize.py gave no result:\n${out}`);
    writeFileSync(resultFile, JSON.stringify(result));
  }
  const quantize = JSON.parse(readFileSync(resultFile, 'utf8')) as Record<string, unknown>;
  return { base: path.join(fixture, 'base'), a: path.join(fixture, 'adapter-a'), b: path.join(fixture, 'adapter-b'), w4a16: path.join(qOut, 'quantized'), quantize };
}

function prompts(): string[] {
  const file = path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct', 'eval.jsonl');
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { prompt: string }).prompt);
}

/** Resident memory (MiB) of every process in the server's group. */
function groupRssMiB(pgid: number): number {
  let kib = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) continue;
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${entry}/status`, 'utf8'));
      kib += Number(m?.[1] ?? 0);
    } catch {
      /* gone */
    }
  }
  return Math.round(kib / 1024);
}

/** CPU time (user + system, ms) used so far by the live processes of group `pgid` (Linux, 100 ticks/s). */
function groupCpuMs(pgid: number): number {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* gone */
    }
  }
  return ticks * 10;
}

async function completion(url: string, model: string, prompt: string, maxTokens: number): Promise<number> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true }),
  });
  const body = (await res.json()) as { usage?: { completion_tokens: number }; error?: { message: string } };
  if (!res.ok || !body.usage || body.usage.completion_tokens !== maxTokens) throw new Error(`${model}: HTTP ${res.status}: ${body.error?.message ?? JSON.stringify(body)}`);
  return body.usage.completion_tokens;
}

/** `REQUESTS` requests, `CONCURRENCY` in flight, models taken in turn from `models`. */
async function scenario(server: VllmServer, models: string[], texts: string[]) {
  const url = server.url;
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => completion(url, models[i % models.length]!, texts[i % texts.length]!, 8))); // warm-up
  const loadBefore = load();
  const cpu0 = groupCpuMs(server.pid);
  const latencies: number[] = [];
  let tokens = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < REQUESTS; i = next++) {
        const s = performance.now();
        const n = await completion(url, models[i % models.length]!, texts[i % texts.length]!, NEW_TOKENS);
        tokens += n; // not `tokens += await ...`: that reads `tokens` before the await and loses updates
        latencies.push(performance.now() - s);
      }
    }),
  );
  const wallS = (performance.now() - t0) / 1000;
  const cpuMs = groupCpuMs(server.pid) - cpu0;
  latencies.sort((x, y) => x - y);
  return {
    models,
    requests: REQUESTS,
    completionTokens: tokens,
    wallS: round(wallS),
    tokensPerS: round(tokens / wallS, 2),
    serverCpuMsPerToken: round(cpuMs / tokens, 2),
    requestLatencyMs: { p50: Math.round(latencies[Math.floor(latencies.length / 2)]!), max: Math.round(latencies[latencies.length - 1]!) },
    loadavg: { before: loadBefore, after: load() },
  };
}

export async function servingBenchmark(): Promise<void> {
  if (!existsSync(vllmPython())) {
    console.log(`serving: skipped (no vLLM venv at ${vllmPython()}; scripts/bootstrap makes it)`);
    return;
  }
  const work = path.join(REPO_ROOT, 'bench', '.tmp', `serving-${SIZE}`);
  mkdirSync(work, { recursive: true });
  const loadAtStart = load();
  const m = prepare(work);
  const texts = prompts();
  const vllmVersion = execFileSync(vllmPython(), ['-c', 'import importlib.metadata as m; print(m.version("vllm-cpu"))'], { encoding: 'utf8' }).trim();

  // All three servers up at once (started one after the other), then every scenario once per round,
  // the order rotating each round, so that the shared machine's load falls on all of them alike.
  const servers: Record<'lora' | 'base' | 'w4a16', { server: VllmServer; startS: number }> = {} as never;
  const specs: Array<[keyof typeof servers, string, StartVllmOptions]> = [
    ['lora', 'the base model with runtime LoRA', { model: m.base, servedModelName: 'base', maxLoras: 2, maxLoraRank: 16 }],
    ['base', 'the base model without LoRA', { model: m.base, servedModelName: 'base', lora: false }],
    ['w4a16', 'the W4A16 model', { model: m.w4a16, servedModelName: 'w4a16', lora: false }],
  ];
  const rssMiB: Record<string, number> = {};
  const perRound: Record<string, Array<Awaited<ReturnType<typeof scenario>>>> = {};
  try {
    for (const [key, what, opts] of specs) {
      log(`starting ${what} (${path.relative(REPO_ROOT, opts.model)})`);
      const t0 = performance.now();
      servers[key] = { server: await startVllm({ dtype: 'bfloat16', kvCacheGiB: KV_GIB, maxModelLen: 512, ...opts }), startS: round((performance.now() - t0) / 1000, 1) };
    }
    const backend = new VllmServingBackend({ urls: [servers.lora.server.url] });
    await backend.loadAdapter({ name: 'adapter-a', path: m.a, base: 'base' });
    await backend.loadAdapter({ name: 'adapter-b', path: m.b, base: 'base' });
    const scenarios: Array<[string, keyof typeof servers, string[]]> = [
      ['lora server, base', 'lora', ['base']],
      ['lora server, 1 adapter', 'lora', ['adapter-a']],
      ['lora server, 2 adapters', 'lora', ['adapter-a', 'adapter-b']],
      ['base server', 'base', ['base']],
      ['w4a16 server', 'w4a16', ['w4a16']],
    ];
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < scenarios.length; k++) {
        const [name, key, models] = scenarios[(k + r) % scenarios.length]!;
        const res = await scenario(servers[key].server, models, texts);
        (perRound[name] ??= []).push(res);
        log(`round ${r + 1}/${ROUNDS}, ${name}: ${res.tokensPerS} tokens/s, ${res.serverCpuMsPerToken} server CPU ms/token (load ${res.loadavg.before[0]})`);
      }
    }
    for (const [key, s] of Object.entries(servers)) rssMiB[key] = groupRssMiB(s.server.pid);
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.server.stop()));
  }
  const startS = Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, s.startS])) as Record<keyof typeof servers, number>;
  const summary = (name: string) => {
    const runs = perRound[name]!;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
    return { tokensPerS: median(runs.map((x) => x.tokensPerS)), serverCpuMsPerToken: median(runs.map((x) => x.serverCpuMsPerToken)), rounds: runs };
  };
  const loraServer = { startS: startS.lora, rssMiB: rssMiB.lora, scenarios: { base: summary('lora server, base'), oneAdapter: summary('lora server, 1 adapter'), twoAdapters: summary('lora server, 2 adapters') } };
  const baseServer = { startS: startS.base, rssMiB: rssMiB.base, scenarios: { base: summary('base server') } };
  const w4a16Server = { startS: startS.w4a16, rssMiB: rssMiB.w4a16, scenarios: { w4a16: summary('w4a16 server') } };

  const tps = (x: { tokensPerS: number }) => x.tokensPerS;
  const cpt = (x: { serverCpuMsPerToken: number }) => x.serverCpuMsPerToken;
  const result = {
    benchmark: 'serving',
    what: 'output tokens/s of vLLM on CPU (vllm-cpu, our LoRA fix applied) for one load: base vs 1 and 2 LoRA adapters on one server with runtime LoRA, and base vs the W4A16 candidate (base + adapter a, GPTQ 4-bit group 32, compressed-tensors) on servers without LoRA; bf16, three servers up at once, every scenario once per round in rotating order; tokensPerS is the median (lower middle) over rounds',
    vllm: vllmVersion,
    model: { size: SIZE, dtype: 'bfloat16', weights: 'random (forgeline_recipes/tiny.py shape, seed 0)', adapters: { a: 'r=8, alpha 16, q/k/v/o/gate/up/down', b: 'r=16, alpha 16, q/k/v/o/gate/up/down' } },
    quantize: m.quantize,
    load: { rounds: ROUNDS, requestsPerScenarioAndRound: REQUESTS, concurrency: CONCURRENCY, newTokens: NEW_TOKENS, prompts: 'tiny-instruct eval prompts (5-8 tokens)', greedy: true, ignoreEos: true, warmup: `${CONCURRENCY} requests of 8 tokens` },
    server: { dtype: 'bfloat16', kvCacheGiB: KV_GIB, maxModelLen: 512, ompThreadsBind: 'nobind', maxLoras: 2, maxLoraRank: 16 },
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    servers: { lora: loraServer, base: baseServer, w4a16: w4a16Server },
    relative: {
      what: 'ratios of the medians; tokensPerS is wall time on a shared machine (see loadavg), serverCpuMsPerToken the CPU time of the server group per output token, less sensitive to the load',
      tokensPerS: {
        oneAdapterVsBaseOnLoraServer: round(tps(loraServer.scenarios.oneAdapter) / tps(loraServer.scenarios.base)),
        twoAdaptersVsBaseOnLoraServer: round(tps(loraServer.scenarios.twoAdapters) / tps(loraServer.scenarios.base)),
        baseOnLoraServerVsBaseServer: round(tps(loraServer.scenarios.base) / tps(baseServer.scenarios.base)),
        w4a16VsBaseServer: round(tps(w4a16Server.scenarios.w4a16) / tps(baseServer.scenarios.base)),
      },
      serverCpuMsPerToken: {
        oneAdapterVsBaseOnLoraServer: round(cpt(loraServer.scenarios.oneAdapter) / cpt(loraServer.scenarios.base)),
        twoAdaptersVsBaseOnLoraServer: round(cpt(loraServer.scenarios.twoAdapters) / cpt(loraServer.scenarios.base)),
        baseOnLoraServerVsBaseServer: round(cpt(loraServer.scenarios.base) / cpt(baseServer.scenarios.base)),
        w4a16VsBaseServer: round(cpt(w4a16Server.scenarios.w4a16) / cpt(baseServer.scenarios.base)),
      },
    },
    loadavg: { atStart: loadAtStart, atEnd: load() },
    measuredAt: new Date().toISOString(),
  };
  const out = path.join(REPO_ROOT, 'bench', 'results', 'serving.json');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result.relative));
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
}

if (require.main === module) {
  servingBenchmark().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
