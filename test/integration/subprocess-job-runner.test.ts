import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RecipeCrashedError, SubprocessJobRunner } from '../../src/adapters/subprocess-job-runner';
import { ErrorType } from '../../src/contracts/errors';
import type { RecipeEvent } from '../../src/ports/job-runner';
import { ForgelineError } from '../../src/ports/errors';
import { venvBin } from '../helpers/temporal';

/** Running (a zombie waiting for a reaper that is not ours counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('SubprocessJobRunner (real Python subprocesses speaking the recipe protocol)', function () {
  this.timeout(30_000);
  let dir: string;
  const runner = () => new SubprocessJobRunner({ python: venvBin('python'), recipesDir: path.join(__dirname, '..', 'fixtures', 'recipes'), killGraceMs: 2000 });
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-job-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('passes the spec, streams events in order, keeps log lines apart and resolves with the result', async function () {
    const events: RecipeEvent[] = [];
    const logs: string[] = [];
    const result = await runner().run({
      recipe: 'fake_ok',
      input: { x: 42 },
      outDir: dir,
      gpuIndices: [],
      onEvent: async (e) => {
        await new Promise((r) => setTimeout(r, 5)); // slow async handler: order must hold
        events.push(e);
      },
      onLog: (l, s) => logs.push(`${s}:${l}`),
    });
    assert.deepEqual(result, { echo: 42 });
    assert.deepEqual(events.map((e) => e.event), ['start', 'progress', 'progress', 'progress', 'checkpoint', 'result']);
    assert.deepEqual(events.filter((e) => e.event === 'progress').map((e) => (e as { step: number }).step), [1, 2, 3]);
    assert.ok(logs.includes('stdout:a plain log line') && logs.includes('stdout:{not json') && logs.includes('stderr:warning on stderr'));
    assert.ok(existsSync(path.join(dir, 'done.txt')));
  });

  it('exit 2 is terminal: a ForgelineError with the recipe\'s message and type', async function () {
    const err = await runner().run({ recipe: 'fake_fail', input: { mode: 'invalid' }, outDir: dir, gpuIndices: [] }).catch((e: unknown) => e);
    assert.ok(err instanceof ForgelineError && err.terminal);
    assert.equal(err.type, ErrorType.InvalidSpec);
    assert.match(err.message, /trainer\.lora\.r: expected a positive integer/);
  });

  it('any other exit is retryable and carries the stderr tail', async function () {
    const err = await runner().run({ recipe: 'fake_fail', input: { mode: 'crash' }, outDir: dir, gpuIndices: [] }).catch((e: unknown) => e);
    assert.ok(err instanceof RecipeCrashedError);
    assert.equal(err.exitCode, 1);
    assert.match(err.message, /CUDA out of memory/);
  });

  it('abort kills the whole process group, grandchildren included, and settles only after exit', async function () {
    const ac = new AbortController();
    let pids: number[] = [];
    const p = runner().run({
      recipe: 'fake_hang',
      input: {},
      outDir: dir,
      gpuIndices: [],
      signal: ac.signal,
      onEvent: (e) => {
        pids = (e as unknown as { pids: number[] }).pids;
        ac.abort(new Error('operator aborted'));
      },
    });
    await assert.rejects(p, /operator aborted/);
    assert.equal(pids.length, 2);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(pids.filter(alive), [], 'recipe and its grandchild are gone');
  });
});
