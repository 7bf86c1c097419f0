/**
 * Recipe contracts (src/contracts/recipes): a result or event that does not match its schema is
 * an error naming the recipe and each field, never a silent 0.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { REPO_ROOT } from '../../src/config/load';
import { ErrorType } from '../../src/contracts/errors';
import {
  checkRecipeEvent,
  checkRecipeResult,
  parseRecipeEvent,
  parseRecipeResult,
  RECIPE_CONTRACTS,
  TrainInputSchema,
  type RecipeName,
} from '../../src/contracts/recipes';
import { EVALUATE_RESULT, QUANTIZE_RESULT, TRAIN_RESULT } from '../fixtures/recipe-results';

const QUANTIZE_NONE_RESULT = {
  method: 'none',
  merged: 'merged',
  adapter_merged: true,
  size_before_bytes: 1_700_000,
  merge_seconds: 0.4,
  quantized: null,
  size_after_bytes: 1_700_000,
  compression_ratio: 1,
  seconds: 0.4,
  peak_memory_bytes: null,
};

function contractFailure(expected: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.type, ErrorType.RecipeContract);
    assert.equal(err.nonRetryable, true);
    assert.equal(err.message, expected);
    return true;
  };
}

describe('recipe contracts (src/contracts/recipes)', function () {
  it('every contract names a recipe that exists under workers/recipes/', function () {
    for (const recipe of Object.keys(RECIPE_CONTRACTS)) {
      assert.ok(existsSync(path.join(REPO_ROOT, 'workers', 'recipes', `${recipe}.py`)), `${recipe}.py`);
    }
  });

  describe('parseRecipeResult', function () {
    it('returns the typed results the recipes report', function () {
      const trained = parseRecipeResult('train', TRAIN_RESULT);
      assert.equal(trained.total_steps, 200);
      assert.equal(parseRecipeResult('train', { ...TRAIN_RESULT, peak_memory_bytes: 2e9, peak_memory_bytes_per_process: [2e9], gpu: 'H200', flops_per_token: 2.5e6, mfu: null }).gpu, 'H200');
      assert.equal(parseRecipeResult('quantize', QUANTIZE_NONE_RESULT).quantized, null);
      assert.equal(parseRecipeResult('quantize', QUANTIZE_RESULT).verify?.finite, true);
      assert.deepEqual(parseRecipeResult('evaluate', EVALUATE_RESULT).metrics.exact_match?.deltaCi, [0.7, 0.95]);
    });

    it('a missing field is an error naming it, not a 0', function () {
      const { total_steps: _, ...withoutTotal } = TRAIN_RESULT;
      assert.throws(() => parseRecipeResult('train', withoutTotal), contractFailure('train result: total_steps: required'));
    });

    it('a renamed field names both the field that is missing and the one nobody knows', function () {
      const { size_after_bytes, ...rest } = QUANTIZE_NONE_RESULT;
      assert.throws(
        () => parseRecipeResult('quantize', { ...rest, size_after: size_after_bytes }),
        contractFailure('quantize result: size_after_bytes: required; size_after: unknown field'),
      );
    });

    it('a field of the wrong type or range is named with its path, nested fields included', function () {
      assert.throws(() => parseRecipeResult('train', { ...TRAIN_RESULT, total_steps: '200' }), contractFailure('train result: total_steps: expected number, received string'));
      assert.throws(() => parseRecipeResult('train', { ...TRAIN_RESULT, total_steps: 2.5 }), contractFailure('train result: total_steps: expected int, received number'));
      const checked = checkRecipeResult('evaluate', {
        ...EVALUATE_RESULT,
        metrics: { exact_match: { value: null, ci: [0.8] } },
        comparisons: [{ ...EVALUATE_RESULT.comparisons[0]!, candidate: undefined }],
      });
      assert.deepEqual(checked, {
        ok: false,
        problems: [
          'metrics.exact_match.value: expected number, received null',
          'metrics.exact_match.ci: Too small: expected array to have >=2 items',
          'comparisons[0].candidate: required',
        ],
      });
    });

    it('a result that is not an object at all', function () {
      assert.throws(() => parseRecipeResult('make_tiny_model', []), contractFailure('make_tiny_model result: (whole value): expected object, received array'));
    });
  });

  describe('recipe events', function () {
    it('accepts the protocol events, extra fields kept, a non-finite measurement as null', function () {
      assert.deepEqual(parseRecipeEvent({ event: 'progress', step: 3, total_steps: 10, loss: null, model: 'candidate' }), {
        event: 'progress',
        step: 3,
        total_steps: 10,
        loss: null,
        model: 'candidate',
      });
      assert.deepEqual(parseRecipeEvent({ event: 'start', recipe: 'train', device: 'cpu', future_field: 1 }), { event: 'start', recipe: 'train', device: 'cpu', future_field: 1 });
    });

    it('anything without a known event kind is not an event (a log line)', function () {
      for (const raw of [null, 3, 'progress', [1], {}, { event: 'progres' }, { event: 7 }]) assert.equal(checkRecipeEvent(raw), undefined, JSON.stringify(raw));
    });

    it('an event of a known kind with bad fields names the event and each field', function () {
      assert.deepEqual(checkRecipeEvent({ event: 'checkpoint', step: -1 }), {
        ok: false,
        problems: ['checkpoint event: step: Too small: expected number to be >=0', 'checkpoint event: path: required'],
      });
      assert.throws(
        () => parseRecipeEvent({ event: 'error', message: 'boom' }),
        contractFailure('recipe event: error event: type: required; error event: retryable: required'),
      );
    });
  });

  describe('recipe inputs', function () {
    it('fill in the defaults the recipes use, and refuse unknown fields', function () {
      const input = TrainInputSchema.parse({ base_model: '/m', dataset_dir: '/d', device: 'cpu', seed: 0 });
      assert.equal(input.lora.r, 8);
      assert.equal(input.learning_rate, 2e-4);
      const bad = TrainInputSchema.safeParse({ base_model: '/m', dataset_dir: '/d', device: 'gpu', seed: 0, learningRate: 1e-3 });
      assert.equal(bad.success, false);
      assert.deepEqual(
        bad.error?.issues.map((i) => [i.path.join('.'), i.message]),
        [
          ['device', 'expected cpu, cuda or cuda:<index>'],
          ['', 'Unrecognized key: "learningRate"'],
        ],
      );
    });

    it('cover every recipe: each has an input and a result schema', function () {
      const names: RecipeName[] = ['train', 'quantize', 'evaluate', 'make_tiny_model'];
      assert.deepEqual(Object.keys(RECIPE_CONTRACTS).sort(), [...names].sort());
    });
  });
});
