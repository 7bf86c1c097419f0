/**
 * The recipes log to W&B with the official Python SDK (`wandb`, forgeline_recipes/tracking.py).
 * Real recipes run as subprocesses, as the GPU activity runs them, against the local endpoint
 * that checks W&B's wire format (test/helpers/fake-wandb-server.ts): the SDK's own service
 * (wandb-core) speaks GraphQL, file_stream, signed uploads and the run_table artifact flow to it.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../../src/config/load';
import { artifactTable, type FakeRun, type FakeWandbServer, startFakeWandb } from '../helpers/fake-wandb-server';
import { venvPython } from '../helpers/python';
import { registerTeardown } from '../setup';

const RECIPES = path.join(REPO_ROOT, 'workers', 'recipes');
const DATASET = path.join(RECIPES, 'data', 'tiny-instruct');
const PROJECT = 'forgeline';
const COMMON = { device: 'cpu', seed: 0 };

type RecipeEvent = Record<string, unknown> & { event: string };

interface RecipeOutcome {
  code: number | null;
  /** The recipe's output directory. */
  out: string;
  events: RecipeEvent[];
  stderr: string;
  result: Record<string, unknown>;
}

let work: string;

/** The recipe environment: this process's, less any W&B setting, with the SDK's files kept in `work`. */
function recipeEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('WANDB_')));
  return {
    ...env,
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    HF_DATASETS_OFFLINE: '1',
    FORGELINE_CPU_THREADS: '1',
    WANDB_CONFIG_DIR: path.join(work, 'wandb-config'),
    WANDB_CACHE_DIR: path.join(work, 'wandb-cache'),
    WANDB_DATA_DIR: path.join(work, 'wandb-data'),
    ...extra,
  };
}

/** Run `workers/recipes/<recipe>.py` as the JobRunner does; every stdout line must be an event. */
async function runRecipe(
  recipe: string,
  spec: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  onStdout?: (text: string) => void,
): Promise<RecipeOutcome> {
  const dir = await mkdtemp(path.join(work, `${recipe}-`));
  const specFile = path.join(dir, 'spec.json');
  await writeFile(specFile, JSON.stringify(spec));
  const out = path.join(dir, 'out');
  const child = spawn(venvPython(), [path.join(RECIPES, `${recipe}.py`), '--spec', specFile, '--out', out], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    onStdout?.(stdout);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const events = stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as RecipeEvent;
      } catch {
        throw new Error(`${recipe} wrote a stdout line that is not an event (the event stream was corrupted): ${line}`);
      }
    });
  const results = events.filter((e) => e.event === 'result');
  assert.equal(results.length, 1, `${recipe} exited ${code} without one result event:\n${stderr.slice(-4000)}`);
  return { code, out, events, stderr, result: results[0]!.result as Record<string, unknown> };
}

function tracking(jobType: string, runId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { project: PROJECT, group: 'release/tiny/0123abc', job_type: jobType, run_name: `${jobType} 0123abc`, run_id: runId, dir: path.join(work, `wandb-${runId}`), ...extra };
}

function assertClean(fake: FakeWandbServer): void {
  assert.deepEqual(fake.violations, [], 'the SDK sent something W&B would refuse or misread');
}

function finishedRun(fake: FakeWandbServer, runId: string): FakeRun {
  const run = fake.run(PROJECT, runId);
  assert.ok(run, `no W&B run ${runId} was created`);
  assert.equal(run.state, 'finished');
  assert.equal(run.exitCode, 0);
  assert.equal(run.group, 'release/tiny/0123abc');
  return run;
}

describe('recipes log to W&B with the official wandb SDK (against a local endpoint that checks W&B wire format)', function () {
  this.timeout(420_000);
  let tinyModel: string;
  let untracked: RecipeOutcome;

  before(async function () {
    this.timeout(420_000);
    work = await mkdtemp(path.join(os.tmpdir(), 'forgeline-recipe-wandb-'));
    registerTeardown(`temp dir ${work}`, () => rm(work, { recursive: true, force: true }));
    untracked = await runRecipe('make_tiny_model', { ...COMMON, size: 'tiny' }, recipeEnv({}));
    assert.equal(untracked.code, 0, untracked.stderr);
    tinyModel = untracked.out;
  });

  it('train logs loss, lr and tokens/s at each step into a run grouped by release with job_type train', async () => {
    const fake = await startFakeWandb();
    const spec = {
      ...COMMON,
      base_model: tinyModel,
      dataset_dir: DATASET,
      steps: 4,
      log_every: 1,
      checkpoint_every: 100,
      batch_size: 4,
      seq_length: 64,
      tracking: tracking('train', 'train-0123abc', { mode: 'online' }),
    };
    const outcome = await runRecipe('train', spec, recipeEnv({ WANDB_BASE_URL: fake.baseUrl, WANDB_API_KEY: fake.apiKey }));
    assert.equal(outcome.code, 0, outcome.stderr);
    assertClean(fake);

    const run = finishedRun(fake, 'train-0123abc');
    assert.equal(run.jobType, 'train');
    assert.equal(run.displayName, 'train 0123abc');
    const progress = outcome.events.filter((e) => e.event === 'progress');
    assert.equal(progress.length, 4);
    const curve = run.history.filter((row) => 'loss' in row).map((row) => ({ step: row._step, loss: row.loss, lr: row.lr, tokens_per_s: row.tokens_per_s }));
    assert.deepEqual(
      curve,
      progress.map((e) => ({ step: e.step, loss: e.loss, lr: e.lr, tokens_per_s: e.tokens_per_s })),
    );
    assert.equal(run.summary.final_loss, outcome.result.final_loss);
    assert.equal(run.summary.total_steps, 4);
    const config = fake.config(run);
    assert.equal(config.recipe, 'train');
    assert.equal(config.steps, 4);
    assert.equal(config.base_model, tinyModel);
    assert.equal(config.tracking, undefined, 'the tracking block is not part of the recipe config');
    assert.match(outcome.stderr, /W&B run train-0123abc: http:\/\/127\.0\.0\.1:\d+\/forgeline-team\/forgeline\/runs\/train-0123abc/);
  });

  it('evaluate logs its metrics to the summary and each table (per-example samples too) as a wandb.Table', async () => {
    const fake = await startFakeWandb();
    const spec = {
      ...COMMON,
      models: { candidate: tinyModel, comparator: tinyModel },
      dataset_dir: DATASET,
      suite: 'tiny-instruct',
      max_examples: 6,
      sample_rows: 3,
      bootstrap: { resamples: 100 },
      tracking: tracking('evaluate', 'evaluate-0123abc'),
    };
    const outcome = await runRecipe('evaluate', spec, recipeEnv({ WANDB_BASE_URL: fake.baseUrl, WANDB_API_KEY: fake.apiKey }));
    assert.equal(outcome.code, 0, outcome.stderr);
    assertClean(fake);

    const run = finishedRun(fake, 'evaluate-0123abc');
    assert.equal(run.jobType, 'evaluate');
    for (const metric of outcome.events.filter((e) => e.event === 'metric')) assert.equal(run.summary[metric.name as string], metric.value);

    const tableEvents = outcome.events.filter((e) => e.event === 'table');
    assert.deepEqual(tableEvents.map((e) => e.name).sort(), ['deltas', 'metrics', 'samples']);
    const tables = fake.tables(run);
    const artifacts = fake.artifactsOf('evaluate-0123abc');
    for (const event of tableEvents) {
      const expected = { columns: event.columns, rows: event.rows };
      const logged = tables.find((t) => t.name === event.name);
      assert.ok(logged, `table ${String(event.name)} is not in the run summary`);
      assert.deepEqual({ columns: logged.columns, rows: logged.rows }, expected);
      const artifact = artifacts.find((a) => a.collection === `run-evaluate-0123abc-${String(event.name)}`);
      assert.ok(artifact, `no committed run_table artifact for ${String(event.name)}`);
      assert.equal(artifact.type, 'run_table');
      assert.deepEqual(artifactTable(artifact), expected);
    }
    const samples = tableEvents.find((e) => e.name === 'samples')!;
    assert.equal((samples.rows as unknown[]).length, 3);
  });

  it('with WANDB_MODE=offline makes no network call and leaves a run that `wandb sync` uploads later', async () => {
    const fake = await startFakeWandb();
    const env = recipeEnv({ WANDB_BASE_URL: fake.baseUrl, WANDB_API_KEY: fake.apiKey, WANDB_MODE: 'offline' });
    const spec = { ...COMMON, size: 'tiny', tracking: tracking('make_tiny_model', 'tiny-offline') };
    const outcome = await runRecipe('make_tiny_model', spec, env);
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.deepEqual(fake.requests, [], 'an offline run sent requests');
    const wandbDir = path.join(work, 'wandb-tiny-offline', 'wandb');
    const offlineRuns = readdirSync(wandbDir).filter((name) => /^offline-run-.*-tiny-offline$/.test(name));
    assert.equal(offlineRuns.length, 1, `no offline run in ${wandbDir}`);
    const runDir = path.join(wandbDir, offlineRuns[0]!);
    assert.ok(existsSync(path.join(runDir, 'run-tiny-offline.wandb')));
    assert.match(outcome.stderr, /offline run written to .*offline-run-.*-tiny-offline; upload it with `wandb sync/);

    const sync = spawn(path.join(path.dirname(venvPython()), 'wandb'), ['sync', runDir], { env: { ...env, WANDB_MODE: 'online' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    sync.stdout.on('data', (d: Buffer) => (output += d.toString()));
    sync.stderr.on('data', (d: Buffer) => (output += d.toString()));
    assert.equal(await new Promise((resolve) => sync.on('close', resolve)), 0, output);
    assertClean(fake);
    const run = finishedRun(fake, 'tiny-offline');
    assert.equal(run.jobType, 'make_tiny_model');
    assert.equal(run.summary.weights_sha256, outcome.result.weights_sha256);
    assert.equal(run.summary.parameters, outcome.result.parameters);
  });

  it('a W&B server that goes down mid-run delays the recipe by at most finish_timeout_s, and changes nothing', async () => {
    const fake = await startFakeWandb();
    const spec = { ...COMMON, size: 'tiny', tracking: tracking('make_tiny_model', 'tiny-down', { mode: 'online', finish_timeout_s: 5 }) };
    let stopped: Promise<void> | undefined;
    let resultAt = 0;
    const outcome = await runRecipe('make_tiny_model', spec, recipeEnv({ WANDB_BASE_URL: fake.baseUrl, WANDB_API_KEY: fake.apiKey }), (stdout) => {
      if (!stopped && stdout.includes('"event": "start"')) stopped = fake.stop(); // after wandb.init, before the first metric
      if (!resultAt && stdout.includes('"event": "result"')) resultAt = Date.now();
    });
    const exitedAfterResultMs = Date.now() - resultAt;
    await stopped;
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.deepEqual(outcome.result, untracked.result, 'tracking changed the result');
    assert.ok(fake.run(PROJECT, 'tiny-down'), 'the run was created before the server went down');
    assert.ok(exitedAfterResultMs < 30_000, `the recipe exited ${exitedAfterResultMs} ms after its result (finish_timeout_s is 5)`);
  });

  it('a W&B server that answers 500 to everything costs one warning, not the recipe or its result', async () => {
    const fake = await startFakeWandb();
    fake.failNext(100_000, { status: 500 });
    const spec = { ...COMMON, size: 'tiny', tracking: tracking('make_tiny_model', 'tiny-500', { mode: 'online', init_timeout_s: 5 }) };
    const outcome = await runRecipe('make_tiny_model', spec, recipeEnv({ WANDB_BASE_URL: fake.baseUrl, WANDB_API_KEY: fake.apiKey }));
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.ok(fake.requests.length > 0, 'the SDK never reached the server');
    assert.deepEqual(outcome.result, untracked.result, 'tracking changed the result');
    const warnings = outcome.stderr.split('\n').filter((line) => line.includes('warning: W&B'));
    assert.equal(warnings.length, 1, outcome.stderr);
    assert.match(warnings[0]!, /W&B tracking off: wandb\.init failed/);
  });
});
