/**
 * LocalJobRunner against real Python subprocesses: small fake recipes under
 * test/fixtures/recipes/ that speak (and break) the recipe protocol.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../../src/config/load';
import { ErrorType } from '../../src/contracts/errors';
import { LocalJobRunner, parseEventLine, processGroupAlive, RecipeCrashedError, RecipeFailedError, RecipePreemptedError } from '../../src/adapters/local-job-runner';
import type { JobSpec, RecipeEvent } from '../../src/ports/job-runner';
import { pidAlive, venvPython } from '../helpers/python';

const RECIPES = path.join(__dirname, '..', 'fixtures', 'recipes');
const GRACE_MS = 600;

interface Captured {
  events: RecipeEvent[];
  logs: Array<[string, 'stdout' | 'stderr']>;
}

describe('LocalJobRunner (integration, runs Python)', function () {
  this.timeout(30_000);
  let scratch: string;
  let tempDir: string;
  let runner: LocalJobRunner;

  beforeEach(async function () {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'forgeline-jobs-'));
    tempDir = path.join(scratch, 'tmp');
    await mkdir(tempDir);
    runner = new LocalJobRunner({ python: venvPython(), recipesDir: RECIPES, killGraceMs: GRACE_MS, tempDir });
  });
  afterEach(async function () {
    await rm(scratch, { recursive: true, force: true });
  });

  function job(recipe: string, input: Record<string, unknown> = {}, extra: Partial<JobSpec> = {}): JobSpec & Captured {
    const captured: Captured = { events: [], logs: [] };
    return {
      recipe,
      input: { seed: 1, ...input },
      outDir: path.join(scratch, 'out'),
      gpuIndices: [],
      onEvent: (e) => void captured.events.push(e),
      onLog: (line, stream) => void captured.logs.push([line, stream]),
      ...extra,
      ...captured,
    };
  }

  it('resolves with the result, passing events in order and everything else as log lines', async function () {
    const j = job('runner_events', { lr: 0.1 });
    const result = (await runner.run(j)) as any;

    assert.deepEqual(
      j.events.map((e) => e.event),
      ['start', 'progress', 'metric', 'checkpoint', 'table', 'result', 'metric'],
    );
    assert.deepEqual(j.events[1], { event: 'progress', step: 1, total_steps: 2, loss: 1.5, lr: 0.0002 });
    assert.deepEqual(j.events[4], { event: 'table', name: 'samples', columns: ['prompt', 'score'], rows: [['hi', 0.5], ['yo', null]] });
    assert.deepEqual(j.events[6], { event: 'metric', name: 'tail', value: 1 }, 'a last line without a newline still counts');

    const stdout = j.logs.filter(([, s]) => s === 'stdout').map(([l]) => l);
    assert.deepEqual(stdout, ['plain log line on stdout', '{"event": "progress", "step": ', '{"not_an_event": true}']);
    assert.deepEqual(j.logs.filter(([, s]) => s === 'stderr').map(([l]) => l), ['warming up', 'done']);

    // The invocation: spec (device filled in), offline environment, a private working directory.
    assert.deepEqual(result.spec, { device: 'cpu', seed: 1, lr: 0.1 });
    assert.deepEqual(result.env, { HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', PYTHONUNBUFFERED: '1', CUDA_VISIBLE_DEVICES: '' });
    assert.equal(result.out, j.outDir);
    assert.equal(path.dirname(result.spec_file), result.cwd);
    assert.ok(result.cwd.startsWith(tempDir + path.sep), `${result.cwd} should be under ${tempDir}`);
    // Only the recipe's output is in outDir, and the private directory is gone.
    assert.deepEqual(await readdir(j.outDir), ['checkpoint-2']);
    assert.deepEqual(await readdir(tempDir), []);
  });

  it('gives the recipe an allow-listed environment (no W&B, AWS or Temporal secrets) plus the job\'s own variables', async function () {
    const worker = {
      PATH: process.env.PATH,
      HOME: '/home/worker',
      LANG: 'C.UTF-8',
      TMPDIR: tempDir,
      HF_HOME: '/models/hf',
      OMP_NUM_THREADS: '2',
      NCCL_DEBUG: 'WARN',
      PYTHONHASHSEED: '0',
      AWS_ACCESS_KEY_ID: 'AKIA...',
      AWS_SECRET_ACCESS_KEY: 'secret',
      WANDB_API_KEY: 'worker-key',
      WANDB_BASE_URL: 'https://wandb.example',
      TEMPORAL_API_KEY: 'temporal-key',
      TEMPORAL_ADDRESS: 'ns.tmprl.cloud:7233',
      HF_TOKEN: 'hf_secret',
      FORGELINE_ARTIFACT_URI: 's3://bucket',
      DATABASE_URL: 'postgres://user:pw@db/x',
    };
    const sandboxed = new LocalJobRunner({ python: venvPython(), recipesDir: RECIPES, tempDir, env: worker });
    const result = (await sandboxed.run(job('runner_events', {}, { env: { WANDB_MODE: 'offline', WANDB_API_KEY: 'job-key' } }))) as { env_names: string[] };
    const seen = new Set(result.env_names);
    for (const name of ['PATH', 'HOME', 'LANG', 'TMPDIR', 'HF_HOME', 'OMP_NUM_THREADS', 'NCCL_DEBUG', 'PYTHONHASHSEED', 'WANDB_MODE', 'WANDB_API_KEY']) {
      assert.ok(seen.has(name), `${name} is passed on`);
    }
    const leaked = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'WANDB_BASE_URL', 'TEMPORAL_API_KEY', 'TEMPORAL_ADDRESS', 'HF_TOKEN', 'FORGELINE_ARTIFACT_URI', 'DATABASE_URL'].filter((n) => seen.has(n));
    assert.deepEqual(leaked, [], 'the worker\'s secrets and settings stay out of the recipe');
  });

  it('stops a recipe that prints no progress for its progress timeout: retryable, as hung', async function () {
    const started = Date.now();
    await assert.rejects(runner.run(job('runner_tree', {}, { progressTimeoutMs: 1_000 })), (err: unknown) => {
      assert.ok(err instanceof RecipeCrashedError, String(err));
      assert.equal(err.terminal, false);
      assert.match(err.message, /^recipe runner_tree printed no progress for 1 s \(its progress timeout\) and was stopped as hung/);
      return true;
    });
    assert.ok(Date.now() - started < 15_000, 'stopped long before the recipe would have ended (600 s)');
  });

  it('refuses a checkpoint path outside the output directory (../, absolute, a symlink out): terminal, the event never handed on', async function () {
    for (const [input, why] of [
      [{ path: '../escape' }, /checkpoint event: path "\.\.\/escape" is not inside the output directory/],
      [{ path: path.join(scratch, 'elsewhere') }, /is not inside the output directory/],
      [{ path: 'ckpt', symlink_to: scratch }, /checkpoint event: path "ckpt" leads out of the output directory/],
    ] as const) {
      const j = job('runner_checkpoint', input, { outDir: path.join(scratch, `out-${Math.random().toString(36).slice(2)}`) });
      await assert.rejects(runner.run(j), (err: unknown) => {
        assert.ok(err instanceof RecipeFailedError, String(err));
        assert.equal(err.type, ErrorType.RecipeContract);
        assert.match(err.message, why);
        return true;
      });
      assert.deepEqual(j.events.filter((e) => e.event === 'checkpoint'), [], 'nobody was asked to publish it');
    }
    const fine = job('runner_checkpoint', { path: 'checkpoints/step-1' });
    await runner.run(fine);
    assert.deepEqual(fine.events[0], { event: 'checkpoint', step: 1, path: 'checkpoints/step-1' });
  });

  it('preempt(): the recipe checkpoints the current step and exits 75, the job fails retryably, new jobs are refused', async function () {
    let checkpointed: { step: number; path: string } | undefined;
    const j = job('runner_preempt', { steps: 400 }, {
      onEvent: (e) => {
        if (e.event === 'progress' && e.step === 3) runner.preempt(); // the worker got SIGTERM
        if (e.event === 'checkpoint') checkpointed = e;
      },
    });
    await assert.rejects(runner.run(j), (err: unknown) => {
      assert.ok(err instanceof RecipePreemptedError, String(err));
      assert.equal(err.terminal, false);
      assert.equal(err.details.exitCode, 75);
      assert.match(err.message, /^recipe runner_preempt stopped because this worker is shutting down; a retry resumes from its last checkpoint/);
      return true;
    });
    assert.ok(checkpointed && checkpointed.step >= 3 && checkpointed.step < 400, `checkpoint event before the exit: ${JSON.stringify(checkpointed)}`);
    assert.ok(existsSync(path.join(j.outDir, checkpointed.path, 'state.json')));
    await assert.rejects(runner.run(job('runner_events')), (err: unknown) => err instanceof RecipePreemptedError && /not started: this worker is shutting down/.test(err.message));
  });

  it('checkpointSignal (a preempted stage): the recipe checkpoints the current step and exits 75, this job only; the runner takes new jobs', async function () {
    let checkpointed: { step: number; path: string } | undefined;
    const stop = new AbortController();
    const j = job('runner_preempt', { steps: 400 }, {
      checkpointSignal: stop.signal,
      onEvent: (e) => {
        if (e.event === 'progress' && e.step === 3) stop.abort();
        if (e.event === 'checkpoint') checkpointed = e;
      },
    });
    await assert.rejects(runner.run(j), (err: unknown) => {
      assert.ok(err instanceof RecipePreemptedError, String(err));
      assert.equal(err.details.exitCode, 75);
      assert.match(err.message, /^recipe runner_preempt stopped because it was asked to checkpoint and stop; a retry resumes from its last checkpoint/);
      return true;
    });
    assert.ok(checkpointed && checkpointed.step >= 3 && checkpointed.step < 400, `checkpoint event before the exit: ${JSON.stringify(checkpointed)}`);
    assert.ok(existsSync(path.join(j.outDir, checkpointed.path, 'state.json')));
    await runner.run(job('runner_events'));
  });

  it('gives the job its GPUs through CUDA_VISIBLE_DEVICES and tells the recipe device cuda', async function () {
    const result = (await runner.run(job('runner_events', {}, { gpuIndices: [2, 3] }))) as any;
    assert.equal(result.env.CUDA_VISIBLE_DEVICES, '2,3');
    assert.equal(result.spec.device, 'cuda');
    const explicit = (await runner.run(job('runner_events', { device: 'cuda:0' }, { gpuIndices: [0] }))) as any;
    assert.equal(explicit.spec.device, 'cuda:0', "the caller's device wins");
  });

  it('awaits async event handlers one at a time, in event order', async function () {
    const seen: string[] = [];
    let active = 0;
    await runner.run(
      job('runner_events', {}, {
        onEvent: async (e) => {
          active++;
          assert.equal(active, 1, 'handlers must not overlap');
          await new Promise((r) => setTimeout(r, 20));
          seen.push(e.event);
          active--;
        },
      }),
    );
    assert.deepEqual(seen, ['start', 'progress', 'metric', 'checkpoint', 'table', 'result', 'metric']);
  });

  it('exit 2: a terminal error with the type and message of the error event', async function () {
    await assert.rejects(runner.run(job('runner_fail', { message: 'dataset has no "text" column' })), (err: unknown) => {
      assert.ok(err instanceof RecipeFailedError, String(err));
      assert.equal(err.terminal, true);
      assert.equal(err.type, ErrorType.InvalidSpec);
      assert.equal(err.message, 'recipe runner_fail failed: dataset has no "text" column');
      assert.equal(err.details.exitCode, 2);
      assert.deepEqual(err.details.stderrTail, ['stderr line 0', 'stderr line 1', 'stderr line 2']);
      return true;
    });
  });

  it('exit 2: an unknown error type becomes RecipeFailed (naming it); no error event: the stderr tail', async function () {
    await assert.rejects(runner.run(job('runner_fail', { message: 'CUDA kernel mismatch', error_type: 'WeirdError' })), (err: unknown) => {
      assert.ok(err instanceof RecipeFailedError);
      assert.equal(err.type, ErrorType.RecipeFailed);
      assert.equal(err.message, 'recipe runner_fail failed [WeirdError]: CUDA kernel mismatch');
      return true;
    });
    await assert.rejects(runner.run(job('runner_fail', {})), (err: unknown) => {
      assert.ok(err instanceof RecipeFailedError);
      assert.equal(err.type, ErrorType.RecipeFailed);
      assert.match(err.message, /^recipe runner_fail failed: no error event was printed\n--- last 3 line\(s\) of stderr ---\nstderr line 0\n/);
      return true;
    });
  });

  it('exit 1: a retryable error carrying the last 50 stderr lines', async function () {
    await assert.rejects(runner.run(job('runner_fail', { exit_code: 1, stderr_lines: 60, message: 'worker died' })), (err: unknown) => {
      assert.ok(err instanceof RecipeCrashedError, String(err));
      assert.equal(err.terminal, false);
      assert.equal(err.name, 'RecipeCrashedError', 'not an ErrorType name, so nonRetryableErrorTypes never match it');
      assert.equal(err.details.exitCode, 1);
      assert.equal(err.details.stderrTail.length, 50);
      assert.equal(err.details.stderrTail[0], 'stderr line 10');
      assert.match(err.message, /^recipe runner_fail exited with code 1: worker died\n--- last 50 line\(s\) of stderr ---\nstderr line 10\n/);
      assert.ok(err.message.endsWith('stderr line 59'));
      assert.ok(!err.message.includes('stderr line 9\n'));
      return true;
    });
  });

  it('exit 0 without a result event: a terminal protocol violation', async function () {
    await assert.rejects(runner.run(job('runner_fail', { exit_code: 0, stderr_lines: 0 })), (err: unknown) => {
      assert.ok(err instanceof RecipeFailedError);
      assert.equal(err.terminal, true);
      assert.match(err.message, /exited 0 without a result event \(protocol violation/);
      return true;
    });
  });

  it('abort kills the whole process group, grandchild included, and settles only once all are gone', async function () {
    const controller = new AbortController();
    let pids: number[] = [];
    const j = job('runner_tree', {}, {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.event === 'start') pids = (e as unknown as { pids: number[] }).pids;
      },
      // The grandchild says so once it ignores SIGTERM: only SIGKILL can end it now.
      onLog: (line) => {
        if (line === 'grandchild up') controller.abort(new Error('operator aborted the release'));
      },
    });
    const started = Date.now();
    await assert.rejects(runner.run(j), /operator aborted the release/);
    const took = Date.now() - started;

    assert.equal(pids.length, 2, 'the recipe reported its pid and its grandchild\'s');
    const [leader, grandchild] = pids as [number, number];
    assert.equal(pidAlive(leader), false, 'the recipe is gone');
    assert.equal(pidAlive(grandchild), false, 'the grandchild is gone');
    assert.equal(processGroupAlive(leader), false, 'nothing is left in the group');
    assert.ok(took >= GRACE_MS, `the grandchild ignores SIGTERM, so SIGKILL came after the ${GRACE_MS} ms grace (took ${took} ms)`);
    assert.deepEqual(await readdir(tempDir), [], 'the private directory is removed');
  });

  describe('data-parallel recipes (forgeline_recipes launcher, 2 CPU ranks)', function () {
    const RANKS_DIR = path.join(REPO_ROOT, 'workers', 'recipes', 'tests', 'fixtures');

    /** Waits for both ranks of ranks_recipe to start; returns [launcher, rank 0, rank 1] pids. */
    async function rankPids(outDir: string): Promise<number[]> {
      const files = [0, 1].map((r) => path.join(outDir, `rank-${r}.pid`));
      const deadline = Date.now() + 20_000;
      while (!files.every((f) => existsSync(f) && readFileSync(f, 'utf8').includes(' '))) {
        if (Date.now() > deadline) throw new Error(`ranks did not start: ${outDir}`);
        await sleep(100);
      }
      const [[r0, launcher], [r1]] = files.map((f) => readFileSync(f, 'utf8').split(' ').map(Number)) as [[number, number], [number]];
      return [launcher, r0, r1];
    }

    async function allGone(pids: number[], withinMs: number): Promise<boolean> {
      const deadline = Date.now() + withinMs;
      while (pids.some(pidAlive)) {
        if (Date.now() > deadline) return false;
        await sleep(100);
      }
      return true;
    }

    it('abort kills the launcher and every rank', async function () {
      const ranksRunner = new LocalJobRunner({ python: venvPython(), recipesDir: RANKS_DIR, killGraceMs: GRACE_MS, tempDir });
      const controller = new AbortController();
      const j = job('ranks_recipe', { processes: 2, behaviour: 'sleep' }, { signal: controller.signal });
      const running = ranksRunner.run(j).catch((e: unknown) => e);
      const pids = await rankPids(j.outDir);
      controller.abort(new Error('operator abort'));
      assert.match(String(await running), /operator abort/);
      assert.ok(pids.every((p) => !pidAlive(p)), `still running: ${pids.filter(pidAlive).join(', ')}`);
    });

    it('a recipe whose worker is killed (kill -9) ends itself and its ranks', async function () {
      const outDir = path.join(scratch, 'orphan');
      const worker = spawn(
        process.execPath,
        ['--require', require.resolve('tsx/cjs'), path.join(__dirname, '..', 'fixtures', 'run-job.ts'), venvPython(), RANKS_DIR, 'ranks_recipe', JSON.stringify({ device: 'cpu', seed: 0, processes: 2, behaviour: 'sleep' }), outDir],
        { stdio: 'ignore' },
      );
      try {
        const pids = await rankPids(outDir);
        worker.kill('SIGKILL');
        assert.ok(await allGone(pids, 15_000), `orphans left running: ${pids.filter(pidAlive).join(', ')}`);
      } finally {
        worker.kill('SIGKILL');
      }
    });
  });

  it('ends processes a recipe leaves behind before resolving', async function () {
    const result = (await runner.run(job('runner_tree', { then: 'exit' }))) as { left_behind: number };
    assert.equal(pidAlive(result.left_behind), false);
  });

  it('stops the job when an event handler fails, and rejects with that failure', async function () {
    let pids: number[] = [];
    const j = job('runner_tree', {}, {
      onEvent: (e) => {
        pids = (e as unknown as { pids: number[] }).pids;
        throw new Error('could not publish checkpoint');
      },
    });
    await assert.rejects(runner.run(j), /could not publish checkpoint/);
    assert.equal(pids.length, 2);
    assert.ok(pids.every((pid) => !pidAlive(pid)), 'the recipe and its grandchild are gone');
  });

  it('does not start a job whose signal is already aborted', async function () {
    const controller = new AbortController();
    controller.abort();
    const j = job('runner_events', {}, { signal: controller.signal });
    await assert.rejects(runner.run(j), (err: Error) => err.name === 'AbortError');
    assert.deepEqual(j.events, []);
    assert.equal(existsSync(j.outDir), false);
  });

  it('refuses unknown or unsafe recipe names (terminal), and reports a missing interpreter (retryable)', async function () {
    for (const recipe of ['no_such_recipe', '../runner_events', 'runner_events.py']) {
      await assert.rejects(runner.run(job(recipe)), (err: unknown) => {
        assert.ok(err instanceof RecipeFailedError, String(err));
        assert.equal(err.type, ErrorType.InvalidSpec);
        return true;
      });
    }
    const broken = new LocalJobRunner({ python: path.join(scratch, 'no-python'), recipesDir: RECIPES, tempDir });
    await assert.rejects(broken.run(job('runner_events')), (err: unknown) => {
      assert.ok(err instanceof RecipeCrashedError, String(err));
      assert.match(err.message, /could not start: .*no-python: spawn .* ENOENT/);
      return true;
    });
    assert.deepEqual(await readdir(tempDir), []);
  });
});

describe('parseEventLine', function () {
  it('accepts protocol events, names the bad fields of malformed ones, and leaves everything else to the log', function () {
    assert.deepEqual(parseEventLine('  {"event":"metric","name":"x","value":1}  '), { ok: true, value: { event: 'metric', name: 'x', value: 1 } });
    assert.deepEqual(parseEventLine('{"event":"result","result":{"a":1},"extra":true}'), { ok: true, value: { event: 'result', result: { a: 1 }, extra: true } });
    for (const line of ['', 'text', '{', '[1]', '{"event":"nope"}', 'null']) {
      assert.equal(parseEventLine(line), undefined, line);
    }
    assert.deepEqual(parseEventLine('{"event":"metric","name":"x"}'), { ok: false, problems: ['metric event: value: required'] });
    assert.deepEqual(parseEventLine('{"event":"result","result":[]}'), { ok: false, problems: ['result event: result: expected record, received array'] });
  });
});
