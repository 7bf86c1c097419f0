/**
 * The main job's serving half: two releases of `tiny-demo` through the gateway and the local vLLM,
 * with a load generator sending tiny-instruct prompts (and feedback on the answers) during each
 * canary.
 *
 *   1. good: the normal demo release (real train / quantize / evaluate) canaries against the base
 *      model, 50% → 100%, and is Promoted;
 *   2. bad: the same recipe trained on a corrupted copy of the dataset (answers shuffled between
 *      prompts), with an offline gate loose enough to let it through; the canary compares it with
 *      the good version now in production, fails on feedback, and the release is RolledBack.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { REPO_ROOT } from '../config/load';
import type { ForgelineConfig } from '../config/schema';
import { ReleaseStage, type ReleaseOutcome, type ReleaseStatus } from '../contracts/release-lifecycle';
import type { ReleaseSpecInput } from '../contracts/specs/release-spec';
import { describeLoad, LoadGenerator, tinyInstructEval } from './load';
import type { Output } from './output';
import { artifactStoreFor, demoReleaseId, releaseStatus, startRelease } from './release';
import { DEV_ALIAS, DEV_BASE_MODEL, VLLM_UPSTREAM, type ServingStack } from './serving-stack';
import type { Log } from './stack';
import { watchRelease } from './watch';
import { mulberry32 as seeded } from '../drift/random';

/** Requests per second the load generator aims at during a canary; on a busy machine vLLM answers fewer, and the bake extends. */
const LOAD_RATE = 10;
const LOAD_CONCURRENCY = 8;

/**
 * The demo's serving section: two steps with a short bake, an analysis sized for the load
 * generator (20 samples per metric decide; at 10 requests/s each side of a 50% step sees ~100 per
 * bake, and on a busy machine an Inconclusive bake extends, up to 6 times, until there are enough),
 * feedback critical (it is what tells a wrong answer), latency tolerant (LoRA on a shared CPU is
 * noisy), the previous version kept 5 s, no drift monitor.
 */
export function demoServing(): NonNullable<ReleaseSpecInput['serving']> {
  return {
    alias: DEV_ALIAS,
    upstream: VLLM_UPSTREAM,
    baseModel: DEV_BASE_MODEL,
    canary: {
      steps: [50, 100],
      bake: '20s',
      maxExtensions: 6,
      analysis: {
        metrics: {
          error_rate: { minSamples: 20 },
          latency_p95: { minSamples: 20, tolerance: { relative: 0.5, absolute: 50 } },
          feedback_score: { critical: true, minSamples: 20, tolerance: { relative: 0.1, absolute: 0.05 } },
        },
      },
    },
    keepPrevious: '5s',
    monitor: { enabled: false },
  };
}


/**
 * tiny-instruct with its training answers shuffled between prompts (the eval split untouched, so
 * the offline evaluation measures it honestly); published as `datasets/tiny-instruct-shuffled/`.
 */
export async function prepareBadDataset(cfg: ForgelineConfig, log: Log): Promise<{ uri: string; sha256: string }> {
  const src = path.join(REPO_ROOT, 'workers', 'recipes', 'data', 'tiny-instruct');
  const rows = readFileSync(path.join(src, 'train.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { prompt: string; completion: string });
  const answers = rows.map((r) => r.completion);
  const rand = seeded(9);
  for (let i = answers.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [answers[i], answers[j]] = [answers[j]!, answers[i]!];
  }
  const dir = path.join(cfg.home, 'datasets', 'tiny-instruct-shuffled');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'train.jsonl'), rows.map((r, i) => JSON.stringify({ completion: answers[i], prompt: r.prompt })).join('\n') + '\n');
  writeFileSync(path.join(dir, 'eval.jsonl'), readFileSync(path.join(src, 'eval.jsonl')));
  const published = await artifactStoreFor(cfg).publishDirectory(dir, 'datasets/tiny-instruct-shuffled/', { source: 'tiny-instruct, training answers shuffled (forgeline demo)' });
  const wrong = rows.filter((r, i) => r.completion !== answers[i]).length;
  log(`dataset   artifact://${published.prefix} (sha256 ${published.digest.slice(0, 12)}…): tiny-instruct with ${wrong} of ${rows.length} training answers shuffled to the wrong prompt`);
  return { uri: `artifact://${published.prefix}`, sha256: published.digest };
}

/** What one demo release ended with. */
export interface DemoReleaseResult {
  label: string;
  workflowId: string;
  expected: ReleaseOutcome;
  status: ReleaseStatus;
  load: string;
}

const SERVING_STAGES = new Set<string>([ReleaseStage.Deploy, ReleaseStage.Canary, ReleaseStage.Production, ReleaseStage.Rollback]);

/**
 * Start a release and follow it: live progress, then, once it serves traffic, the load generator
 * and each canary step's analysis as it lands; ends when the release has ended.
 */
export async function runDemoRelease(client: Client, cfg: ForgelineConfig, serving: ServingStack, out: Output, spec: ReleaseSpecInput, label: string, expected: ReleaseOutcome): Promise<DemoReleaseResult> {
  const { log } = out;
  const handle = await startRelease(client, cfg, spec, log, { workflowId: demoReleaseId(spec) });
  const follower = followServing(handle, serving, log);
  try {
    await watchRelease(handle, out.progress());
  } finally {
    await follower.stop();
  }
  const status = await releaseStatus(handle);
  log(`release ${label}: ${status.outcome}${status.failure ? `: ${status.failure}` : ''}`);
  for (const g of status.gates ?? []) log(`  gate ${g.passed ? 'PASS' : 'FAIL'} ${g.reason}`);
  return { label, workflowId: handle.workflowId, expected, status, load: follower.summary() };
}

/** While the release serves traffic: the load generator, its counts every 10 s, and the canary's analyses as they land. */
function followServing(handle: WorkflowHandle, serving: ServingStack, log: Log) {
  let load: LoadGenerator | undefined;
  let stopped = false;
  let printed = 0;
  let weights = '';
  let lastReport = { requests: 0, at: Date.now() };
  const loop = (async () => {
    while (!stopped) {
      const status = await handle.query<ReleaseStatus>('status').catch(() => undefined);
      if (status && SERVING_STAGES.has(status.stage) && !load) {
        await serving.ready();
        load = new LoadGenerator({ url: serving.gatewayUrl, key: serving.devKey, model: DEV_ALIAS, examples: tinyInstructEval(), rate: LOAD_RATE, concurrency: LOAD_CONCURRENCY });
        load.start();
        lastReport = { requests: 0, at: Date.now() };
        log(`load generator: ${LOAD_RATE} requests/s (at most ${LOAD_CONCURRENCY} in flight) of tiny-instruct eval prompts through ${serving.gatewayUrl}, model ${DEV_ALIAS}; feedback 1 for a right answer, 0 for a wrong one`);
      }
      const c = status?.canary;
      if (c) {
        const w = Object.entries(c.weights).map(([v, x]) => `${v} ${x}%`).join(', ');
        if (w && w !== weights) log(`  traffic: ${w}`);
        weights = w || weights;
        for (; printed < c.analyses.length; printed++) {
          const a = c.analyses[printed]!;
          log(`  canary step ${a.step} (${a.weight}%), bake ${a.bake}: ${a.verdict}: ${a.summary}`);
        }
      }
      if (load && Date.now() - lastReport.at >= 10_000) {
        log(`  ${describeLoad(load, lastReport)}`);
        lastReport = { requests: load.total().requests, at: Date.now() };
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return {
    async stop(): Promise<void> {
      stopped = true;
      await loop.catch(() => undefined);
      await load?.stop();
    },
    summary: (): string => (load ? describeLoad(load) : 'load: none sent'),
  };
}

/** The two scenarios' release specs: the good one as prepared, the bad one on the shuffled dataset with a loose gate. */
export function demoSpecs(good: ReleaseSpecInput, badDataset: { uri: string; sha256: string }): { good: ReleaseSpecInput; bad: ReleaseSpecInput } {
  return {
    good: { ...good, serving: demoServing() },
    bad: {
      ...good,
      dataset: badDataset,
      // Deliberately loose: perplexity below the base model's, which a model that learnt the
      // answers' format but not their content passes (119 → ~10 here, exact match 0.04). Offline
      // gates are a floor; the canary's feedback on real traffic is what catches a wrong model.
      evaluation: { suite: 'tiny-instruct', compareTo: 'base', gates: [{ metric: 'perplexity', op: '<', threshold: 0, on: 'delta' }] },
      serving: demoServing(),
    },
  };
}

/** The closing summary; returns whether both scenarios ended as expected. */
export async function printDemoSummary(results: DemoReleaseResult[], serving: ServingStack, log: Log): Promise<boolean> {
  let ok = true;
  log('\nsummary');
  for (const r of results) {
    const as = r.status.outcome === r.expected;
    ok &&= as;
    log(`  ${r.label.padEnd(5)} ${r.status.outcome}${as ? '' : ` (expected ${r.expected})`}  ${r.workflowId}`);
    for (const a of r.status.canary?.analyses ?? []) log(`        step ${a.step} (${a.weight}%) ${a.verdict}: ${a.summary}`);
    log(`        ${r.load}`);
  }
  const table = await serving.router.getTable();
  const route = table.routes[DEV_ALIAS]?.targets ?? [];
  log(`  route ${DEV_ALIAS}: ${route.map((t) => `${t.version} (${t.model}) ${t.weight}`).join(', ') || 'none'}`);
  const served = await fetch(`${serving.vllmUrls[0]}/v1/models`, { signal: AbortSignal.timeout(5000) })
    .then((r) => r.json() as Promise<{ data: Array<{ id: string }> }>)
    .then((b) => b.data.map((m) => m.id))
    .catch(() => undefined);
  if (served) log(`  vLLM serves: ${served.join(', ')}`);
  const [good, bad] = results;
  const goodLabel = good?.status.canary?.candidate;
  const badModel = bad?.status.canary?.candidate.replace('@', '-');
  if (goodLabel && !(route.length === 1 && route[0]!.version === goodLabel && route[0]!.weight > 0)) {
    log(`  expected all traffic on ${goodLabel}`);
    ok = false;
  }
  if (served && badModel && served.includes(badModel)) {
    log(`  expected the bad adapter ${badModel} unloaded`);
    ok = false;
  }
  return ok;
}
