/**
 * The LocalJobRunner checks every event line against src/contracts/recipes/events.ts: a
 * malformed event stops the recipe and fails the job terminally, naming the field.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LocalJobRunner, RecipeFailedError } from '../../src/adapters/local-job-runner';
import { ErrorType } from '../../src/contracts/errors';
import type { RecipeEvent } from '../../src/ports/job-runner';
import { venvPython } from '../helpers/python';

const RECIPES = path.join(__dirname, '..', 'fixtures', 'recipes');

describe('LocalJobRunner: recipe events against their contract (integration, runs Python)', function () {
  this.timeout(30_000);
  let scratch: string;

  beforeEach(async function () {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'forgeline-events-'));
  });
  afterEach(async function () {
    await rm(scratch, { recursive: true, force: true });
  });

  it('a malformed event stops the recipe at once: a terminal RecipeContract error naming the event and field', async function () {
    const runner = new LocalJobRunner({ python: venvPython(), recipesDir: RECIPES, killGraceMs: 500, tempDir: scratch });
    const events: RecipeEvent[] = [];
    const started = Date.now();
    await assert.rejects(
      runner.run({ recipe: 'runner_bad_event', input: { seed: 0 }, outDir: path.join(scratch, 'out'), gpuIndices: [], onEvent: (e) => void events.push(e) }),
      (err: unknown) => {
        assert.ok(err instanceof RecipeFailedError, String(err));
        assert.equal(err.type, ErrorType.RecipeContract);
        assert.equal(err.terminal, true);
        assert.match(err.message, /^recipe runner_bad_event broke the protocol \(workers\/recipes\/PROTOCOL\.md\): progress event: step: expected number, received string\n/);
        assert.match(err.message, /about to break the protocol/, 'the stderr tail is kept');
        return true;
      },
    );
    assert.ok(Date.now() - started < 20_000, 'the runner stopped the recipe instead of waiting out its 60 s sleep');
    assert.deepEqual(events.map((e) => e.event), ['start'], 'the malformed event is not passed on');
  });
});
