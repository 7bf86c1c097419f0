import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/activity';
import { createPromptReleaseControlActivities } from '../../activities/prompt-release';
import type { ActivityDeps } from '../../activities';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { CliError } from '../../src/cli/errors';
import { Output, type Stream } from '../../src/cli/output';
import { decide, rollbackRelease } from '../../src/cli/release';
import { loadConfig } from '../../src/config/load';
import { LocalTracker } from '../../src/adapters/local-tracker';
import { ErrorType } from '../../src/contracts/errors';
import type { PromptSpecInput } from '../../src/contracts/prompt';
import type { PromptEvalInput, PromptEvalResult } from '../../src/contracts/prompt-eval';
import {
  PromptReleaseOutcome,
  PromptReleaseStage,
  promptChildWorkflowId,
  type PromptReleaseRequestInput,
  type PromptReleaseStatus,
} from '../../src/contracts/prompt-release';
import type { PromptRouteTargets, RoutingTable, VersionMetrics } from '../../src/contracts/routing';
import { trackerRunId } from '../../src/contracts/release-lifecycle';
import { ForgelineLifecycle, ForgelineModel, ForgelineOutcome, ForgelineStage, Lifecycle } from '../../src/contracts/search-attributes';
import type { RepoReader } from '../../src/ports/repo-reader';
import type { TrafficRouter } from '../../src/ports/traffic-router';
import { PromptRegistry, promptDigest } from '../../src/registry/prompt-registry';
import { parsePromptSpec } from '../../src/contracts/prompt';
import { promptReleaseWorkflow, promptStatusQuery } from '../../workflows';
import { approveUpdate, pauseUpdate, promoteNowUpdate, rejectUpdate, resumeUpdate, rollbackUpdate } from '../../workflows';
import { versionMetrics } from '../fixtures/serving';
import { failureOfType } from '../helpers/failures';
import { getTimeSkippingEnv, isolate } from '../helpers/temporal';
import { withWorkers } from '../helpers/workers';

const who = { by: 'oncall@example.com', reason: 'prompt release test' };

class Capture implements Stream {
  text = '';
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

const promptSpec = (over: Partial<PromptSpecInput> = {}): PromptSpecInput => ({
  name: 'support-answer',
  template: 'Answer briefly.\nQuestion: {{question}}',
  variables: { question: { type: 'string' } },
  model: { alias: 'tiny-demo', params: { temperature: 0, maxTokens: 32 } },
  ...over,
});
const version = (p: PromptSpecInput) => promptDigest(parsePromptSpec(p)).slice(0, 12);

const TEST_SET = ['{"id": "a", "variables": {"question": "What is 2+2?"}, "expect": {"contains": ["4"]}}', '{"id": "b", "variables": {"question": "Capital of France?"}, "expect": {"contains": ["Paris"]}}'].join('\n');

function releaseRequest(over: Partial<PromptReleaseRequestInput> = {}): PromptReleaseRequestInput {
  return {
    prompt: 'support-answer',
    source: promptSpec(),
    evaluation: { testSet: 'prompts/support-answer/tests.jsonl', runs: 2, judge: { model: 'tiny-demo' } },
    canary: {
      steps: [
        { weight: 10, durationSeconds: 600 },
        { weight: 50, durationSeconds: 600 },
        { weight: 100, durationSeconds: 600 },
      ],
      minRequests: 20,
      analysis: { metrics: { error_rate: { minSamples: 20 }, latency_p95: { enabled: false }, feedback_score: { enabled: false } } },
    },
    testSet: { text: TEST_SET, source: 'prompts/support-answer/tests.jsonl' },
    ...over,
  };
}

/** A gateway's prompt routes and metrics, in memory: every route change recorded, metrics scripted per fetch. */
class FakePromptRouter implements Pick<TrafficRouter, 'setPromptRoute' | 'deletePromptRoute' | 'promptMetrics'> {
  routes = new Map<string, PromptRouteTargets>();
  history: Array<{ name: string; weights: Record<string, number> | null }> = [];
  fetches = 0;
  private tableVersion = 0;
  constructor(private readonly script: (fetch: number, name: string) => VersionMetrics[]) {}
  private table(): RoutingTable {
    return { version: this.tableVersion, updatedAt: '', updatedBy: '', upstreams: {}, routes: {}, prompts: Object.fromEntries([...this.routes].map(([k, targets]) => [k, { targets }])) } as RoutingTable;
  }
  async setPromptRoute(name: string, targets: PromptRouteTargets): Promise<RoutingTable> {
    this.routes.set(name, targets);
    this.tableVersion++;
    this.history.push({ name, weights: Object.fromEntries(targets.map((t) => [t.version, t.weight])) });
    return this.table();
  }
  async deletePromptRoute(name: string): Promise<RoutingTable> {
    if (this.routes.delete(name)) this.tableVersion++;
    this.history.push({ name, weights: null });
    return this.table();
  }
  async promptMetrics(name: string): Promise<VersionMetrics[]> {
    return this.script(this.fetches++, name);
  }
}

/** Healthy traffic on every version the route has now. */
const healthy = (router: () => FakePromptRouter) => (_: number, name: string) => (router().routes.get(name) ?? []).map((t) => versionMetrics(t.version, { requests: 200 }));

/** The candidate errors on a third of its requests; production is healthy. */
const failingCandidate = (candidate: string) => (router: () => FakePromptRouter) => (_: number, name: string) =>
  (router().routes.get(name) ?? []).map((t) => versionMetrics(t.version, { requests: 200, errors: t.version.endsWith(candidate) ? 70 : 0 }));

function evalResult(input: PromptEvalInput, passed: boolean): PromptEvalResult {
  const ci = (mean: number) => ({ mean, std: 0.01, n: 2, confidence: 0.95, low: mean - 0.02, high: mean + 0.02 });
  return {
    passed,
    prompt: { name: input.prompt.name, version: input.prompt.version },
    ...(input.production ? { production: { version: input.production.version } } : {}),
    metrics: { task: { candidate: ci(passed ? 0.9 : 0.3), ...(input.production ? { production: ci(0.85) } : {}), runs: [0.9, 0.9], cases: 2 } },
    gates: [{ gate: 'task >= 0.8', metric: 'task', kind: 'threshold', passed, reason: passed ? 'lower bound 0.88 >= 0.8' : 'lower bound 0.28 < 0.8' }],
    cases: 2,
    undefinedMetrics: [],
    runs: 2,
    judgeFailures: 0,
    failedCases: [],
  } as PromptEvalResult;
}

interface World {
  dir: string;
  registry: PromptRegistry;
  router: FakePromptRouter;
  evaluations: PromptEvalInput[];
  moves: Array<{ alias: string; version: string; attempt: number }>;
}

async function withPromptWorld<T>(
  ctx: Mocha.Context,
  opts: {
    traffic?: (router: () => FakePromptRouter) => (fetch: number, name: string) => VersionMetrics[];
    evalPasses?: (input: PromptEvalInput) => boolean;
    repo?: Record<string, string>;
    /** The first attempt of each alias move lands, then its reply is lost (the activity fails): the retry must see it done. */
    loseFirstMoveReply?: boolean;
    seed?: (registry: PromptRegistry) => Promise<void>;
  },
  fn: (w: World, env: TestWorkflowEnvironment, start: (input: unknown) => Promise<WorkflowHandle<typeof promptReleaseWorkflow>>) => Promise<T>,
): Promise<T> {
  const env = await getTimeSkippingEnv();
  const { taskQueue, workflowId } = isolate(ctx, 'prompt-release');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-prompt-release-'));
  const artifacts = new LocalArtifactStore(pathToFileURL(path.join(dir, 'artifacts')).href);
  const registry = new PromptRegistry(artifacts);
  await opts.seed?.(registry);
  const router: FakePromptRouter = new FakePromptRouter((opts.traffic ?? healthy)(() => router));
  const files = opts.repo ?? {};
  const repos: RepoReader = { knows: (r) => r === 'acme/prompts', readFile: async (_r, _sha, file) => files[file] };
  const deps = { artifacts, tracker: new LocalTracker({ home: dir }), trackerProject: 'forgeline', router: router as unknown as TrafficRouter, repos } as unknown as ActivityDeps;
  const real = createPromptReleaseControlActivities(deps);
  const w: World = { dir, registry, router, evaluations: [], moves: [] };
  const attempts = new Map<string, number>();
  const activities = {
    ...real,
    async movePromptAlias(input: Parameters<typeof real.movePromptAlias>[0]) {
      const attempt = (attempts.get(input.moveId) ?? 0) + 1;
      attempts.set(input.moveId, attempt);
      const r = await real.movePromptAlias(input);
      w.moves.push({ alias: input.alias, version: input.version, attempt });
      if (opts.loseFirstMoveReply && attempt === 1) throw ApplicationFailure.retryable('connection reset after the move landed', 'Transient');
      return r;
    },
    async evaluatePromptVersion(input: PromptEvalInput): Promise<PromptEvalResult> {
      w.evaluations.push(input);
      return evalResult(input, opts.evalPasses?.(input) ?? true);
    },
  };
  try {
    return await withWorkers(env, { taskQueue, control: activities }, () =>
      fn(w, env, (input) => env.client.workflow.start(promptReleaseWorkflow, { taskQueue, workflowId, args: [input] })),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function advanceUntil(env: TestWorkflowEnvironment, handle: WorkflowHandle, pred: (s: PromptReleaseStatus) => boolean, step = '1m'): Promise<PromptReleaseStatus> {
  for (let i = 0; i < 500; i++) {
    const s = await handle.query(promptStatusQuery).catch(() => undefined);
    if (s && pred(s)) return s;
    await env.sleep(step);
  }
  throw new Error('the prompt release never reached the expected state');
}

/** Publish `spec` and point `production` (and `candidate`) at it, as an earlier release would have. */
const seedProduction = (spec: PromptSpecInput) => async (registry: PromptRegistry) => {
  const r = await registry.publish({ prompt: spec, createdAt: '2026-12-01T00:00:00.000Z' });
  for (const alias of ['candidate', 'production'] as const) {
    await registry.moveAlias(spec.name, alias, { version: r.version, expectedVersion: null, by: 'earlier release', reason: 'seed', at: '2026-12-01T00:00:00.000Z', moveId: `seed-${alias}` });
  }
};

const OLD = promptSpec({ template: 'Question: {{question}}' });
const NEW = promptSpec();
const OLD_LABEL = `support-answer@${version(OLD)}`;
const NEW_LABEL = `support-answer@${version(NEW)}`;

describe('promptReleaseWorkflow (time-skipping test server; real registry, validation and routing activities over a local store and a fake gateway)', function () {
  this.timeout(120_000);

  it('pass: publishes, evaluates against production, canaries 10 → 50 → 100%, moves production; the registry records each move', async function () {
    await withPromptWorld(this, { seed: seedProduction(OLD) }, async (w, _env, start) => {
      const handle = await start(releaseRequest());
      const result = await handle.result();
      assert.equal(result.outcome, PromptReleaseOutcome.Promoted);
      assert.ok('version' in result);
      assert.equal(result.version, version(NEW));
      assert.equal(result.replaced, version(OLD));
      // Evaluation compared the candidate with the production prompt.
      assert.equal(w.evaluations.length, 1);
      assert.equal(w.evaluations[0]!.production?.version, version(OLD));
      assert.equal(w.evaluations[0]!.testSet.text, TEST_SET);
      assert.deepEqual(
        w.router.history.map((h) => h.weights),
        [
          { [OLD_LABEL]: 90, [NEW_LABEL]: 10 },
          { [OLD_LABEL]: 50, [NEW_LABEL]: 50 },
          { [OLD_LABEL]: 0, [NEW_LABEL]: 100 },
          { [NEW_LABEL]: 100 },
        ],
      );
      // The gateway got the published prompt itself, from the registry.
      const routed = w.router.routes.get('support-answer')!.find((t) => t.version === NEW_LABEL)!;
      assert.equal(routed.prompt.template, NEW.template);
      assert.equal((await w.registry.getAlias('support-answer', 'production'))?.version, version(NEW));
      assert.equal((await w.registry.getAlias('support-answer', 'candidate'))?.version, version(NEW));
      const history = await w.registry.aliasHistory('support-answer', 'production');
      assert.equal(history.at(-1)?.releaseWorkflowId, handle.workflowId);
      assert.equal(history.at(-1)?.replaced?.version, version(OLD));
      const status = await handle.query(promptStatusQuery);
      assert.equal(status.stage, PromptReleaseStage.Done);
      assert.equal(status.canary?.analyses.length, 3);
      assert.ok(status.canary?.analyses.every((a) => a.verdict === 'Pass'));
      assert.equal(status.evaluation?.passed, true);
      assert.deepEqual(status.versions, { candidate: version(NEW), production: version(OLD), previousCandidate: version(OLD) });
      const desc = await handle.describe();
      assert.equal(desc.typedSearchAttributes.get(ForgelineLifecycle), Lifecycle.PromptRelease);
      assert.equal(desc.typedSearchAttributes.get(ForgelineModel), 'support-answer');
      assert.equal(desc.typedSearchAttributes.get(ForgelineOutcome), PromptReleaseOutcome.Promoted);
      assert.equal(desc.typedSearchAttributes.get(ForgelineStage), PromptReleaseStage.Done);
      // The tracker run: versions, evaluation, one row per canary analysis, the outcome.
      const run = readFileSync(path.join(w.dir, 'runs', 'forgeline', `${trackerRunId(handle.workflowId)}.jsonl`), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const text = JSON.stringify(run);
      assert.ok(text.includes(`"candidate":"${version(NEW)}"`) && text.includes(`"production":"${version(OLD)}"`), text);
      assert.ok(text.includes('prompt_eval_gates'), 'the evaluation gates are logged');
      assert.equal(run.filter((r) => r.type === 'log').length, 3, 'one row per canary analysis');
      assert.ok(text.includes('"outcome":"Promoted"'), 'the outcome is in the summary');
    });
  });

  it('a first release (no production) serves the candidate alone, checks each window on its own, and promotes', async function () {
    await withPromptWorld(this, {}, async (w, _env, start) => {
      const result = await (await start(releaseRequest())).result();
      assert.equal(result.outcome, PromptReleaseOutcome.Promoted);
      assert.equal(w.evaluations[0]!.production, undefined);
      assert.ok(w.router.history.every((h) => JSON.stringify(h.weights) === JSON.stringify({ [NEW_LABEL]: 100 })));
      assert.equal((await w.registry.getAlias('support-answer', 'production'))?.version, version(NEW));
    });
  });

  it('releasing the production prompt again changes nothing: Promoted at once, nothing evaluated or routed', async function () {
    await withPromptWorld(this, { seed: seedProduction(NEW) }, async (w, _env, start) => {
      const result = await (await start(releaseRequest())).result();
      assert.equal(result.outcome, PromptReleaseOutcome.Promoted);
      assert.ok('note' in result);
      assert.equal(result.note, `support-answer@${version(NEW)} is production already`);
      assert.equal(w.evaluations.length, 0);
      assert.equal(w.router.history.length, 0);
      assert.deepEqual(w.moves, []);
    });
  });

  it('gate failure: ends GateFailed, candidate stays on the evaluated version, nothing is routed, production untouched', async function () {
    await withPromptWorld(this, { seed: seedProduction(OLD), evalPasses: () => false }, async (w, _env, start) => {
      const handle = await start(releaseRequest());
      const err = await handle.result().catch((e: unknown) => e);
      const failure = failureOfType(err, ErrorType.GateFailed);
      assert.match(failure.message, /gate failed: task >= 0\.8: lower bound 0\.28 < 0\.8/);
      assert.equal(w.router.history.length, 0, 'no prompt route was set');
      assert.equal((await w.registry.getAlias('support-answer', 'candidate'))?.version, version(NEW));
      assert.equal((await w.registry.getAlias('support-answer', 'production'))?.version, version(OLD));
      const status = await handle.query(promptStatusQuery);
      assert.equal(status.outcome, PromptReleaseOutcome.GateFailed);
      assert.equal(status.canary, undefined);
    });
  });

  it('canary rollback: a candidate that errors fails step 1; the route serves production alone again and candidate moves back', async function () {
    await withPromptWorld(this, { seed: seedProduction(OLD), traffic: failingCandidate(version(NEW)) }, async (w, _env, start) => {
      const handle = await start(releaseRequest());
      const err = await handle.result().catch((e: unknown) => e);
      const failure = failureOfType(err, ErrorType.RolledBack);
      assert.match(failure.message, /canary failed at step 1 \(10%\)/);
      assert.deepEqual(w.router.history.map((h) => h.weights), [{ [OLD_LABEL]: 90, [NEW_LABEL]: 10 }, { [OLD_LABEL]: 100 }]);
      assert.equal((await w.registry.getAlias('support-answer', 'production'))?.version, version(OLD));
      assert.equal((await w.registry.getAlias('support-answer', 'candidate'))?.version, version(OLD), 'candidate moved back');
      const status = await handle.query(promptStatusQuery);
      assert.equal(status.outcome, PromptReleaseOutcome.RolledBack);
      assert.equal(status.canary?.analyses[0]?.verdict, 'Fail');
      assert.match(status.canary!.analyses[0]!.summary, /error_rate/);
    });
  });

  it('a first release rolled back by an operator removes the prompt route (nothing served it before)', async function () {
    await withPromptWorld(this, {}, async (w, env, start) => {
      const handle = await start(releaseRequest());
      await advanceUntil(env, handle, (s) => s.stage === PromptReleaseStage.Canary && (s.canary?.step ?? 0) >= 1, '10s');
      const after = await handle.executeUpdate(rollbackUpdate, { args: [who] });
      assert.equal(after.outcome, PromptReleaseOutcome.RolledBack);
      failureOfType(await handle.result().catch((e: unknown) => e), ErrorType.RolledBack);
      assert.equal(w.router.routes.has('support-answer'), false);
      assert.deepEqual(w.router.history.at(-1), { name: 'support-answer', weights: null });
      assert.equal(await w.registry.getAlias('support-answer', 'production'), undefined);
    });
  });

  it('pause holds the canary step (no analysis however long), resume serves the step again, promote-now skips the remaining steps', async function () {
    await withPromptWorld(this, { seed: seedProduction(OLD) }, async (w, env, start) => {
      const handle = await start(releaseRequest());
      await advanceUntil(env, handle, (s) => s.canary?.step === 1 && Object.keys(s.canary.weights).length > 0, '10s');
      const paused = await handle.executeUpdate(pauseUpdate, { args: [who] });
      assert.equal(paused.canary?.paused, true);
      await env.sleep('3h');
      let s = await handle.query(promptStatusQuery);
      assert.equal(s.canary?.step, 1);
      assert.equal(s.canary?.analyses.length, 0, 'a paused step is not analyzed');
      const again = await handle.executeUpdate(pauseUpdate, { args: [who] }).catch((e: unknown) => e);
      assert.ok(again instanceof WorkflowUpdateFailedError, 'a second pause is refused');
      await handle.executeUpdate(resumeUpdate, { args: [who] });
      s = await advanceUntil(env, handle, (x) => (x.canary?.analyses.length ?? 0) >= 1, '1m');
      assert.equal(s.canary?.analyses[0]?.step, 1);
      await handle.executeUpdate(promoteNowUpdate, { args: [who] });
      const result = await handle.result();
      assert.equal(result.outcome, PromptReleaseOutcome.Promoted);
      assert.deepEqual(w.router.history.at(-1)?.weights, { [NEW_LABEL]: 100 });
      const history = await w.registry.aliasHistory('support-answer', 'production');
      assert.equal(history.at(-1)?.by, who.by, 'production moved by the operator who promoted');
    });
  });

  it('approval: reject ends Rejected with who and why, nothing routed; approve is refused once decided', async function () {
    await withPromptWorld(this, { seed: seedProduction(OLD) }, async (w, env, start) => {
      const handle = await start(releaseRequest({ approval: { required: true, timeout: '1h' } }));
      await advanceUntil(env, handle, (s) => s.awaitingApproval, '1s');
      const after = await handle.executeUpdate(rejectUpdate, { args: [{ by: 'lead@example.com', reason: 'tone is off' }] });
      assert.equal(after.outcome, PromptReleaseOutcome.Rejected);
      assert.equal(after.decision?.by, 'lead@example.com');
      const again = await handle.executeUpdate(approveUpdate, { args: [who] }).catch((e: unknown) => e);
      assert.ok(again instanceof WorkflowUpdateFailedError);
      const failure = failureOfType(await handle.result().catch((e: unknown) => e), ErrorType.Rejected);
      assert.match(failure.message, /rejected by lead@example\.com: tone is off/);
      assert.equal(w.router.history.length, 0);
    });
  });

  it('approval: approve starts the canary and the release promotes; an approval without `by` is refused', async function () {
    await withPromptWorld(this, { seed: seedProduction(OLD) }, async (_w, env, start) => {
      const handle = await start(releaseRequest({ approval: { required: true, timeout: '1h' } }));
      await advanceUntil(env, handle, (s) => s.awaitingApproval, '1s');
      const refused = await handle.executeUpdate(approveUpdate, { args: [{ by: ' ', reason: 'x' }] }).catch((e: unknown) => e);
      assert.ok(refused instanceof WorkflowUpdateFailedError);
      assert.match(String(refused.cause?.message), /`by` is required/);
      await handle.executeUpdate(approveUpdate, { args: [who] });
      const result = await handle.result();
      assert.equal(result.outcome, PromptReleaseOutcome.Promoted);
      assert.ok('decision' in result && result.decision?.by === who.by);
    });
  });

  it('the release CLI steers a prompt release by its workflow ID: approve through `decide`; rollback after promotion is refused with what to do', async function () {
    await withPromptWorld(this, { seed: seedProduction(OLD) }, async (_w, env, start) => {
      const handle = await start(releaseRequest({ approval: { required: true, timeout: '1h' } }));
      await advanceUntil(env, handle, (s) => s.awaitingApproval, '1s');
      const stdout = new Capture();
      assert.equal(await decide(handle, 'approve', who, new Output(stdout, new Capture())), 0);
      assert.match(stdout.text, new RegExp(`release ${handle.workflowId} is now approved by oncall@example.com / Running \\(stage canary\\)`));
      assert.equal((await handle.result()).outcome, PromptReleaseOutcome.Promoted);
      const cfg = loadConfig({ env: { FORGELINE_CONFIG: '' } });
      const refused = await rollbackRelease(env.client, cfg, handle.workflowId, who, new Output(new Capture(), new Capture())).catch((e: unknown) => e);
      assert.ok(refused instanceof CliError);
      assert.match(refused.message, /prompt release .* ended Promoted: a prompt rolls back while its release runs; once promoted, release the previous version again/);
    });
  });

  it('bad spec: fails at once, non-retryable, naming each field and the fix; nothing published', async function () {
    await withPromptWorld(this, {}, async (w, _env, start) => {
      const bad = releaseRequest({ canary: { steps: [{ weight: 50, durationSeconds: 60 }] }, source: promptSpec({ template: 'Q: {{question}} {{undeclared}}' }) });
      const err = await (await start(bad)).result().catch((e: unknown) => e);
      assert.ok(err instanceof WorkflowFailedError);
      const failure = failureOfType(err, ErrorType.InvalidSpec);
      assert.equal(failure.nonRetryable, true);
      assert.equal(failure.message, 'invalid prompt release spec: canary.steps, source.template');
      const [{ problems }] = failure.details as [{ problems: string[] }];
      assert.deepEqual(problems, [
        'canary.steps: steps: expected the last step at weight 100 (all traffic on the candidate)',
        'source.template: placeholder {{undeclared}} is not declared: add variables.undeclared ({type, required}) or remove the placeholder',
      ]);
      assert.deepEqual(await w.registry.listPrompts(), []);
    });
  });

  it('idempotent retries: alias moves whose reply was lost are retried and recognized as done (one move each in the history)', async function () {
    await withPromptWorld(this, { seed: seedProduction(OLD), loseFirstMoveReply: true }, async (w, _env, start) => {
      const result = await (await start(releaseRequest())).result();
      assert.equal(result.outcome, PromptReleaseOutcome.Promoted);
      assert.deepEqual(
        w.moves.map((m) => `${m.alias}@${m.version}#${m.attempt}`),
        [`candidate@${version(NEW)}#1`, `candidate@${version(NEW)}#2`, `production@${version(NEW)}#1`, `production@${version(NEW)}#2`],
      );
      // Seed move + this release's one move each: the retry wrote nothing new.
      assert.equal((await w.registry.aliasHistory('support-answer', 'candidate')).length, 2);
      assert.equal((await w.registry.aliasHistory('support-answer', 'production')).length, 2);
      assert.equal((await w.registry.listVersions('support-answer')).length, 2);
    });
  });

  describe('a push (webhook input {repo, ref, sha, paths})', function () {
    const SHA = 'a'.repeat(40);
    const releaseYaml = (name: string) =>
      [
        'evaluation:',
        `  testSet: prompts/${name}/tests.jsonl`,
        '  runs: 2',
        '  judge: {model: tiny-demo}',
        'canary:',
        '  steps: [{weight: 50, durationSeconds: 300}, {weight: 100, durationSeconds: 300}]',
        '  analysis: {metrics: {error_rate: {minSamples: 20}, latency_p95: {enabled: false}, feedback_score: {enabled: false}}}',
        '',
      ].join('\n');
    const promptYaml = (name: string) => `name: ${name}\ntemplate: "Q: {{question}}"\nvariables: {question: {type: string}}\nmodel: {alias: tiny-demo}\n`;
    const repoFiles = (names: string[]) =>
      Object.fromEntries(names.flatMap((n) => [[`prompts/${n}/release.yaml`, releaseYaml(n)], [`prompts/${n}/prompt.yaml`, promptYaml(n)], [`prompts/${n}/tests.jsonl`, TEST_SET]]));

    it('two changed prompts: two child releases <parent>/<name>, both promoted', async function () {
      await withPromptWorld(this, { repo: repoFiles(['faq', 'greeter']) }, async (w, env, start) => {
        const handle = await start({ repo: 'acme/prompts', ref: 'refs/heads/main', sha: SHA, paths: ['prompts/faq/prompt.yaml', 'prompts/greeter/release.yaml', 'README.md'] });
        const result = await handle.result();
        assert.ok('releases' in result);
        assert.deepEqual(
          result.releases.map((r) => [r.prompt, r.workflowId, r.outcome]),
          [
            ['faq', promptChildWorkflowId(handle.workflowId, 'faq'), 'Promoted'],
            ['greeter', promptChildWorkflowId(handle.workflowId, 'greeter'), 'Promoted'],
          ],
        );
        for (const name of ['faq', 'greeter']) {
          const child = env.client.workflow.getHandle(promptChildWorkflowId(handle.workflowId, name));
          const s = await child.query(promptStatusQuery);
          assert.equal(s.outcome, PromptReleaseOutcome.Promoted);
          assert.equal(s.git?.sha, SHA);
          assert.ok(await w.registry.getAlias(name, 'production'));
        }
        const parent = await handle.query(promptStatusQuery);
        assert.deepEqual(parent.children?.map((c) => c.outcome), ['Promoted', 'Promoted']);
      });
    });

    it('a bad file in one prompt fails the push non-retryably, naming file, field and line, and starts no release', async function () {
      const files = repoFiles(['faq', 'greeter']);
      files['prompts/greeter/release.yaml'] = releaseYaml('greeter').replace('runs: 2', 'runs: 1');
      delete files['prompts/faq/tests.jsonl'];
      await withPromptWorld(this, { repo: files }, async (w, env, start) => {
        const handle = await start({ repo: 'acme/prompts', ref: 'refs/heads/main', sha: SHA, paths: ['prompts/faq/prompt.yaml', 'prompts/greeter/release.yaml'] });
        const failure = failureOfType(await handle.result().catch((e: unknown) => e), ErrorType.InvalidSpec);
        assert.equal(failure.nonRetryable, true);
        assert.match(failure.message, /^invalid prompt release files at acme\/prompts@aaaaaaaaaaaa \(nothing was started\)/);
        const [{ problems }] = failure.details as [{ problems: string[] }];
        assert.equal(problems.length, 2);
        assert.match(problems[0]!, /^prompts\/faq\/release\.yaml: evaluation\.testSet \(line 2\): prompts\/faq\/tests\.jsonl does not exist at acme\/prompts@aaaaaaaaaaaa: commit the JSONL test set, or fix the path$/);
        assert.match(problems[1]!, /^prompts\/greeter\/release\.yaml: evaluation\.runs \(line 3\): at least 2 \(a confidence interval needs two runs\)$/);
        assert.deepEqual(await w.registry.listPrompts(), []);
        const child = await env.client.workflow.getHandle(promptChildWorkflowId(handle.workflowId, 'greeter')).describe().catch((e: unknown) => e);
        assert.ok(child instanceof Error, 'no child release was started');
      });
    });
  });
});
