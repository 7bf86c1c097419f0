/**
 * VllmServingBackend and startVllm against real vLLM servers on CPU (the vLLM venv that
 * scripts/bootstrap installs, with our CPU LoRA fix). The fixture (test/helpers/vllm_fixture.py, main
 * venv) builds the tiny Llama, two random nonzero LoRA adapters (r=8 and r=16) and, for 16 prompts,
 * the greedy continuations under base, adapter a and adapter b from transformers + PEFT; vLLM must
 * give exactly those tokens, also when base and adapter requests share a batch (vLLM 0.32's CPU ops
 * applied the last adapter to base requests there: the mixed-batch test fails without our patch).
 *
 * Two replicas of the base model start once for the first suite, a W4A16 server (our quantize
 * recipe's compressed-tensors output) once for the second; about 3 GB of memory each.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../../src/config/load';
import { ErrorType } from '../../src/contracts/errors';
import { ServingUnavailableError, VllmServingBackend } from '../../src/adapters/vllm-backend';
import { startVllm, type VllmServer } from '../../src/adapters/vllm-process';
import { ForgelineError } from '../../src/ports/errors';
import { ServingRejectedError } from '../../src/ports/serving-backend';
import { freePort } from '../helpers/processes';
import { venvPython } from '../helpers/python';

const run = promisify(execFile);
const FIXTURE = path.join(REPO_ROOT, 'test', 'helpers', 'vllm_fixture.py');
const BASE = 'tiny';
const VARIANTS = ['base', 'adapter-a', 'adapter-b'] as const;
type Variant = (typeof VARIANTS)[number];

interface ReferencePrompt {
  prompt_ids: number[];
  base: number[];
  'adapter-a': number[];
  'adapter-b': number[];
}
interface Reference {
  new_tokens: number;
  min_margin: number;
  prompts: ReferencePrompt[];
}

interface Completion {
  status: number;
  tokenIds?: number[];
  text?: string;
  error?: string;
}

/** One greedy completion from a prompt given as token ids (no EOS stop, as the reference). */
async function complete(url: string, model: string, promptIds: number[], maxTokens: number, stream = false): Promise<Completion> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: promptIds, max_tokens: maxTokens, temperature: 0, ignore_eos: true, return_token_ids: true, stream }),
  });
  if (stream) {
    assert.equal(res.status, 200, await res.clone().text());
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    let text = '';
    let done = false;
    for (const line of (await res.text()).split('\n')) {
      if (!line.startsWith('data: ')) continue;
      const data = line.slice(6).trim();
      if (data === '[DONE]') done = true;
      else text += (JSON.parse(data) as { choices: Array<{ text: string }> }).choices[0]!.text;
    }
    assert.ok(done, 'the stream ends with data: [DONE]');
    return { status: res.status, text };
  }
  const body = (await res.json()) as { choices?: Array<{ token_ids: number[]; text: string }>; error?: { message: string } };
  if (!res.ok) return { status: res.status, error: body.error?.message ?? JSON.stringify(body) };
  return { status: res.status, tokenIds: body.choices![0]!.token_ids, text: body.choices![0]!.text };
}

/** Live processes (not zombies) of process group `pgid`. */
function groupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') pids.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return pids;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  assert.fail('expected a rejection');
}

describe('vLLM serving backend on CPU (integration, real vLLM servers)', function () {
  let dir: string;
  let ref: Reference;
  let paths: Record<'base' | 'adapter-a' | 'adapter-b', string>;
  const logs: string[] = [];

  before(async function () {
    this.timeout(180_000);
    dir = await mkdtemp(path.join(os.tmpdir(), 'forgeline-vllm-'));
    const { stdout } = await run(venvPython(), [FIXTURE, 'models', '--out', path.join(dir, 'fixture')], {
      env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' },
      maxBuffer: 1 << 24,
    });
    const made = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, string>;
    paths = { base: made.base!, 'adapter-a': made['adapter-a']!, 'adapter-b': made['adapter-b']! };
    ref = JSON.parse(await readFile(made.reference!, 'utf8')) as Reference;
  });
  after(async function () {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(logs.slice(-80).join('\n'));
  });

  it('refuses replica URLs it cannot use, naming the entry', function () {
    assert.throws(() => new VllmServingBackend({ urls: [] }), /urls must list at least one replica/);
    assert.throws(() => new VllmServingBackend({ urls: ['localhost:8000'] }), /urls\[0\] 'localhost:8000' must be http:\/\/ or https:\/\//);
    assert.throws(() => new VllmServingBackend({ urls: ['http://a:1', 'http://a:1/v1/'] }), /lists http:\/\/a:1 twice/);
    assert.deepEqual(new VllmServingBackend({ urls: ['http://a:1/v1', 'http://b:2/'] }).urls, ['http://a:1', 'http://b:2']);
  });

  describe('two replicas of the base model with runtime LoRA', function () {
    this.timeout(120_000);
    let replicas: VllmServer[] = [];
    let backend: VllmServingBackend;

    before(async function () {
      this.timeout(600_000);
      const started = await Promise.allSettled(
        ['r1', 'r2'].map((r) =>
          startVllm({
            model: paths.base,
            servedModelName: BASE,
            dtype: 'float32',
            maxModelLen: 128,
            maxLoras: 2,
            maxLoraRank: 16,
            log: (l) => logs.push(`[${r}] ${l}`),
          }),
        ),
      );
      replicas = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      backend = new VllmServingBackend({ urls: replicas.map((r) => r.url) });
    });
    after(async function () {
      this.timeout(60_000);
      await Promise.all(replicas.map((r) => r.stop()));
    });

    const name = (v: Variant) => (v === 'base' ? BASE : v);
    async function loadBoth() {
      for (const v of ['adapter-a', 'adapter-b'] as const) await backend.loadAdapter({ name: v, path: paths[v], base: BASE });
    }

    it('health is ok on every replica; listModels is the base model that both serve', async function () {
      assert.deepEqual(
        await backend.health(),
        replicas.map((r) => ({ url: r.url, ok: true })),
      );
      const models = await backend.listModels();
      assert.deepEqual(models.find((m) => m.id === BASE), { id: BASE, root: paths.base });
      assert.ok(models.every((m) => m.id === BASE || m.parent === BASE), JSON.stringify(models));
    });

    it('a replica that is down: health names it, listModels fails as retryable', async function () {
      const down = `http://127.0.0.1:${await freePort()}`;
      const partial = new VllmServingBackend({ urls: [replicas[0]!.url, down], attempts: 2, retryDelayMs: 50 });
      const health = await partial.health();
      assert.deepEqual(health[0], { url: replicas[0]!.url, ok: true });
      assert.equal(health[1]!.url, down);
      assert.equal(health[1]!.ok, false);
      assert.match(health[1]!.error ?? '', /ECONNREFUSED/);
      const err = await rejection(partial.listModels());
      assert.ok(err instanceof ServingUnavailableError, String(err));
      assert.ok(!(err instanceof ForgelineError && err.terminal));
      assert.match(err.message, new RegExp(`${down}/v1/models failed 2 times`));
    });

    it('hot-loads two adapters under distinct names on every replica; loading again is a no-op', async function () {
      await loadBoth();
      await loadBoth(); // idempotent: same name, same path
      for (const r of replicas) {
        const models = await new VllmServingBackend({ urls: [r.url] }).listModels();
        for (const v of ['adapter-a', 'adapter-b'] as const) {
          assert.deepEqual(models.find((m) => m.id === v), { id: v, parent: BASE, root: paths[v] }, `${v} on ${r.url}`);
        }
      }
      const both = (await backend.listModels()).map((m) => m.id).sort();
      assert.deepEqual(both, [...both].filter((id) => [BASE, 'adapter-a', 'adapter-b'].includes(id)).sort());
      assert.ok(both.includes('adapter-a') && both.includes('adapter-b'));
    });

    it('refuses a loaded name for other weights (terminal), and a base that is not served', async function () {
      await loadBoth();
      const reuse = await rejection(backend.loadAdapter({ name: 'adapter-a', path: paths['adapter-b'] }));
      assert.ok(reuse instanceof ServingRejectedError, String(reuse));
      assert.equal(reuse.terminal, true);
      assert.equal(reuse.type, ErrorType.ServingRejected);
      assert.match(reuse.message, /already serves that name from .*adapter-a.*never reused/);
      const base = await rejection(backend.loadAdapter({ name: 'adapter-c', path: paths['adapter-a'], base: 'other-base' }));
      assert.ok(base instanceof ServingRejectedError, String(base));
      assert.match(base.message, /base model other-base is not served .* \(it serves tiny/);
      assert.ok(!(await backend.listModels()).some((m) => m.id === 'adapter-c'));
      const badName = await rejection(backend.loadAdapter({ name: 'has space', path: paths['adapter-a'] }));
      assert.ok(badName instanceof ForgelineError && badName.type === ErrorType.InvalidSpec && badName.terminal, String(badName));
      assert.match(badName.message, /^name must be/);
    });

    it('mixed batch: 48 concurrent base and adapter requests over both replicas, each equal to the transformers + PEFT reference', async function () {
      await loadBoth();
      const jobs = ref.prompts.flatMap((p, i) => VARIANTS.map((v, k) => ({ p, v, replica: replicas[(i + k) % replicas.length]! })));
      assert.equal(jobs.length, 48);
      const outs = await Promise.all(jobs.map((j) => complete(j.replica.url, name(j.v), j.p.prompt_ids, ref.new_tokens)));
      const wrong = jobs.flatMap((j, i) =>
        JSON.stringify(outs[i]!.tokenIds) === JSON.stringify(j.p[j.v]) ? [] : [`${j.v} on ${j.replica.url}: got ${JSON.stringify(outs[i]!.tokenIds ?? outs[i]!.error)}, want ${JSON.stringify(j.p[j.v])}`],
      );
      assert.deepEqual(wrong, [], `${wrong.length} of ${jobs.length} outputs differ from the reference:\n${wrong.join('\n')}`);
    });

    it('streams a completion as server-sent events whose text equals the plain answer', async function () {
      await loadBoth();
      const p = ref.prompts[0]!;
      const plain = await complete(replicas[0]!.url, 'adapter-b', p.prompt_ids, ref.new_tokens);
      assert.deepEqual(plain.tokenIds, p['adapter-b']);
      const streamed = await complete(replicas[0]!.url, 'adapter-b', p.prompt_ids, ref.new_tokens, true);
      assert.equal(streamed.text, plain.text);
    });

    it('retries a transient fault: a load whose answer was lost (502 after the replica loaded it) converges', async function () {
      // A pass-through proxy in front of replica 1 that, for the first load only, forwards it and
      // then answers 502, as a dropped connection or a gateway timeout would.
      const seen: string[] = [];
      let failed = false;
      const proxy = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          void (async () => {
            seen.push(`${req.method} ${req.url}`);
            const upstream = await fetch(replicas[0]!.url + req.url, { method: req.method, headers: { 'content-type': 'application/json' }, ...(req.method === 'POST' ? { body } : {}) });
            const text = await upstream.text();
            if (req.url === '/v1/load_lora_adapter' && !failed) {
              failed = true;
              res.writeHead(502).end('bad gateway');
              return;
            }
            res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'text/plain' }).end(text);
          })();
        });
      });
      const port = await freePort();
      await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
      try {
        const copy = path.join(dir, 'adapter-a-retry');
        await cp(paths['adapter-a'], copy, { recursive: true });
        const viaProxy = new VllmServingBackend({ urls: [`http://127.0.0.1:${port}`], retryDelayMs: 50 });
        await viaProxy.loadAdapter({ name: 'adapter-a-retry', path: copy, base: BASE });
        assert.deepEqual(seen.filter((r) => r.startsWith('POST')), ['POST /v1/load_lora_adapter', 'POST /v1/load_lora_adapter']);
        assert.deepEqual((await viaProxy.listModels()).find((m) => m.id === 'adapter-a-retry'), { id: 'adapter-a-retry', parent: BASE, root: copy });
        await viaProxy.unloadAdapter('adapter-a-retry');
      } finally {
        proxy.close();
      }
    });

    it('a missing adapter path is a terminal error naming it; the replicas stay healthy', async function () {
      const missing = path.join(dir, 'no-such-adapter');
      const err = await rejection(backend.loadAdapter({ name: 'adapter-missing', path: missing }));
      assert.ok(err instanceof ServingRejectedError, String(err));
      assert.equal(err.terminal, true);
      assert.equal(err.status, 404);
      assert.ok(err.message.includes(`no LoRA adapter at ${missing}`), err.message);
      assert.ok((await backend.health()).every((h) => h.ok));
      assert.ok(!(await backend.listModels()).some((m) => m.id === 'adapter-missing'));
      const relative = await rejection(backend.loadAdapter({ name: 'adapter-rel', path: 'adapters/x' }));
      assert.ok(relative instanceof ForgelineError && relative.type === ErrorType.InvalidSpec, String(relative));
      assert.match(relative.message, /path must be an absolute directory path/);
    });

    it('unload: the adapter then answers 404, unloading again is fine, and its files can go', async function () {
      // A copy of its own, so that deleting it afterwards touches nothing another test uses.
      const copy = path.join(dir, 'adapter-b-unload');
      await cp(paths['adapter-b'], copy, { recursive: true });
      await backend.loadAdapter({ name: 'adapter-b-unload', path: copy, base: BASE });
      const p = ref.prompts[1]!;
      for (const r of replicas) assert.deepEqual((await complete(r.url, 'adapter-b-unload', p.prompt_ids, ref.new_tokens)).tokenIds, p['adapter-b']);

      await backend.unloadAdapter('adapter-b-unload');
      assert.ok(!(await backend.listModels()).some((m) => m.id === 'adapter-b-unload'));
      for (const r of replicas) {
        const gone = await complete(r.url, 'adapter-b-unload', p.prompt_ids, ref.new_tokens);
        assert.equal(gone.status, 404);
        assert.match(gone.error ?? '', /The model `adapter-b-unload` does not exist/);
      }
      await backend.unloadAdapter('adapter-b-unload'); // not loaded: fine
      await backend.unloadAdapter('never-loaded');

      await rm(copy, { recursive: true });
      await loadBoth();
      for (const r of replicas) {
        assert.deepEqual((await complete(r.url, BASE, p.prompt_ids, ref.new_tokens)).tokenIds, p.base);
        assert.deepEqual((await complete(r.url, 'adapter-a', p.prompt_ids, ref.new_tokens)).tokenIds, p['adapter-a']);
      }
      assert.ok((await backend.health()).every((h) => h.ok));
    });
  });

  describe('a W4A16 model (our quantize recipe, compressed-tensors) served as its own model', function () {
    this.timeout(120_000);
    let server: VllmServer | undefined;
    let quantized: string;
    let qref: { new_tokens: number; min_margin: number; prompts: Array<{ prompt_ids: number[]; tokens: number[]; base: number[]; margin: number }> };

    before(async function () {
      this.timeout(600_000);
      // GPTQ, 4 bits, group 32, of the base with adapter a merged: a candidate as the release makes it.
      const spec = path.join(dir, 'quantize.json');
      await writeFile(
        spec,
        JSON.stringify({
          base_model: paths.base,
          adapter: paths['adapter-a'],
          dataset_dir: path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct'),
          method: 'gptq',
          bits: 4,
          group_size: 32,
          calibration_samples: 32,
          device: 'cpu',
          seed: 0,
        }),
      );
      const env = { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1' };
      const out = path.join(dir, 'quantize-out');
      await run(venvPython(), [path.join(REPO_ROOT, 'workers', 'recipes', 'quantize.py'), '--spec', spec, '--out', out], { env, maxBuffer: 1 << 24 });
      quantized = path.join(out, 'quantized');
      assert.ok(existsSync(path.join(quantized, 'config.json')));
      const refFile = path.join(dir, 'w4a16-reference.json');
      await run(venvPython(), [FIXTURE, 'reference', '--model', quantized, '--base', paths.base, '--out', refFile], { env, maxBuffer: 1 << 24 });
      qref = JSON.parse(await readFile(refFile, 'utf8')) as typeof qref;
      // vLLM's CPU int4 kernel takes bf16/fp16 activations only (W4A16); the reference is float32.
      server = await startVllm({ model: quantized, servedModelName: 'tiny-w4a16', lora: false, dtype: 'bfloat16', maxModelLen: 128, log: (l) => logs.push(`[w4a16] ${l}`) });
    });
    after(async function () {
      await server?.stop();
    });

    it('serves it under its own name, with the transformers reference greedy tokens', async function () {
      const config = JSON.parse(await readFile(path.join(quantized, 'config.json'), 'utf8')) as { quantization_config: { quant_method: string; format: string; config_groups: { group_0: { weights: { num_bits: number } } } } };
      assert.equal(config.quantization_config.quant_method, 'compressed-tensors');
      assert.equal(config.quantization_config.format, 'pack-quantized');
      assert.equal(config.quantization_config.config_groups.group_0.weights.num_bits, 4);

      const backend = new VllmServingBackend({ urls: [server!.url] });
      assert.deepEqual(await backend.listModels(), [{ id: 'tiny-w4a16', root: quantized }]);
      // 12 prompts whose every greedy step under the W4A16 model (transformers, dequantized, float32)
      // is decided by a clear margin (>= 0.3 logits), so bf16 rounding cannot flip a token.
      const outs = await Promise.all(qref.prompts.map((p) => complete(server!.url, 'tiny-w4a16', p.prompt_ids, qref.new_tokens)));
      const wrong = qref.prompts.flatMap((p, i) => (JSON.stringify(outs[i]!.tokenIds) === JSON.stringify(p.tokens) ? [] : [`got ${JSON.stringify(outs[i]!.tokenIds ?? outs[i]!.error)}, want ${JSON.stringify(p.tokens)}`]));
      assert.deepEqual(wrong, [], wrong.join('\n'));
      // It is the candidate (base + adapter a), not the base: most answers differ from the base's.
      const sameAsBase = qref.prompts.filter((p) => JSON.stringify(p.tokens) === JSON.stringify(p.base)).length;
      assert.ok(sameAsBase < qref.prompts.length / 2, `${sameAsBase} of ${qref.prompts.length} answers equal the base model's`);
    });

    it('stop() ends the whole process group (API server, engine core, worker)', async function () {
      const group = server!.pid;
      assert.ok(groupMembers(group).length >= 3, `the group has ${groupMembers(group).length} processes`);
      await server!.stop();
      assert.deepEqual(groupMembers(group), []);
      await server!.stop(); // idempotent
    });
  });

  describe('a server whose parent dies', function () {
    it('is gone when its parent is killed with SIGKILL', async function () {
      this.timeout(600_000);
      const parent = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), path.join(REPO_ROOT, 'test', 'helpers', 'vllm-parent.ts'), paths.base], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      parent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      parent.stderr!.on('data', (d: Buffer) => logs.push(`[parent] ${d.toString().trimEnd()}`));
      try {
        const started = await new Promise<{ pid: number; url: string }>((resolve, reject) => {
          parent.stdout!.on('data', () => {
            const line = out.split('\n').find((l) => l.startsWith('{'));
            if (line) resolve(JSON.parse(line) as { pid: number; url: string });
          });
          parent.once('exit', (code) => reject(new Error(`the parent exited (${code}) before its server was healthy`)));
        });
        assert.equal((await fetch(`${started.url}/health`)).status, 200);
        assert.ok(groupMembers(started.pid).length >= 3);
        parent.kill('SIGKILL');
        // The server's watcher polls every 0.5 s; give it up to 30 s on a busy machine.
        for (let i = 0; i < 300 && groupMembers(started.pid).length > 0; i++) await sleep(100);
        assert.deepEqual(groupMembers(started.pid), [], 'the server group outlived its parent');
      } finally {
        parent.kill('SIGKILL');
      }
    });
  });
});
