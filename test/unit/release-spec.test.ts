import assert from 'node:assert/strict';
import { ReleaseSpecSchema } from '../../src/contracts/specs/release-spec';
import { validateSpec } from '../../src/contracts/validate';

const minimal = { model: 'support-bot', base: { path: '/models/base' }, dataset: { uri: 'artifact://datasets/x/', sha256: 'a'.repeat(64) } };

describe('ReleaseSpecSchema (validated at the edge and as the first activity)', function () {
  it('completes a minimal spec with defaults', function () {
    const v = validateSpec(ReleaseSpecSchema, minimal);
    assert.ok(v.ok);
    assert.equal(v.value.trainer.recipe, 'trl-sft-lora');
    assert.equal(v.value.gpu.pool, 'cpu');
    assert.equal(v.value.quantization.method, 'gptq');
    assert.deepEqual(v.value.approval, { required: false, timeout: '24h' });
    assert.deepEqual(v.value.evaluation.gates, []);
  });

  it('names every bad field and what to write instead', function () {
    const v = validateSpec(ReleaseSpecSchema, {
      ...minimal,
      model: 'Support Bot',
      dataset: { uri: 'http://x', sha256: 'nope' },
      trainer: { steps: 10, epochs: 1, lora: { r: 0, dropout: 1 } },
      quantization: { method: 'int8', bits: 3 },
      evaluation: { gates: [{ metric: 'exact_match', op: '=>', threshold: 'high' }] },
      approval: { timeout: '1 day' },
      surprise: true,
    });
    assert.ok(!v.ok);
    const text = v.problems.join('\n');
    for (const expected of [
      /^model: expected a model alias/m,
      /^dataset\.uri: expected file:\/\/\/\.\.\., s3:\/\/\.\.\. or artifact:\/\/<key>/m,
      /^dataset\.sha256: expected 64 lowercase hex/m,
      /^trainer\.lora\.r: expected a positive number of ranks/m,
      /^trainer\.lora\.dropout: expected 0 <= dropout < 1/m,
      /^quantization\.method: expected gptq, awq or none/m,
      /^quantization\.bits: expected 4 or 8/m,
      /^evaluation\.gates\.0\.op: expected one of >=, >, <=, </m,
      /^evaluation\.gates\.0\.threshold: expected a number/m,
      /^approval\.timeout: expected a duration such as 90s, 30m, 24h or 7d/m,
      /surprise/,
    ]) assert.match(text, expected);
  });

  it('refuses steps and epochs together, and a base that is neither path nor ref', function () {
    const both = validateSpec(ReleaseSpecSchema, { ...minimal, trainer: { steps: 10, epochs: 2 } });
    assert.ok(!both.ok && both.problems.some((p) => p === 'trainer.steps: set either steps or epochs, not both'));
    const base = validateSpec(ReleaseSpecSchema, { ...minimal, base: { url: 'hf://x' } });
    assert.ok(!base.ok && base.problems.some((p) => p.startsWith('base: expected { "path"')));
  });
  it('completes a serving section with the canary, monitor and analysis defaults; no serving means the release ends at candidate', function () {
    assert.equal((validateSpec(ReleaseSpecSchema, minimal) as { ok: true; value: { serving?: unknown } }).value.serving, undefined);
    const v = validateSpec(ReleaseSpecSchema, { ...minimal, serving: { baseModel: 'tiny-base' } });
    assert.ok(v.ok);
    const s = v.value.serving!;
    assert.deepEqual(s.canary.steps, [5, 25, 50, 100]);
    assert.equal(s.canary.bake, '10m');
    assert.equal(s.upstream, 'vllm');
    assert.equal(s.keepPrevious, '1h');
    assert.equal(s.canary.analysis.confidence, 0.98);
    assert.equal(s.monitor.onBreach, 'alert');
    assert.equal(s.monitor.method, 'model');
  });

  it('refuses a canary plan the analysis could not judge, and a retrain policy without a dataset, naming the field', function () {
    const problems = (serving: unknown) => {
      const v = validateSpec(ReleaseSpecSchema, { ...minimal, serving });
      assert.ok(!v.ok);
      return v.problems.join('\n');
    };
    assert.match(problems({ baseModel: 'b', canary: { steps: [100] } }), /^serving\.canary\.steps: expected a first step below 100/m);
    assert.match(problems({ baseModel: 'b', canary: { steps: [5, 50] } }), /^serving\.canary\.steps: expected the last step to be 100/m);
    assert.match(problems({ baseModel: 'b', canary: { steps: [50, 25, 100] } }), /^serving\.canary\.steps: expected increasing percents/m);
    assert.match(problems({ baseModel: 'b', canary: { bake: '10 minutes' } }), /^serving\.canary\.bake: expected a duration/m);
    assert.match(problems({ baseModel: 'b', monitor: { onBreach: 'retrain' } }), /^serving\.monitor\.retrain: onBreach retrain needs retrain\.dataset/m);
    assert.match(problems({ canary: {} }), /^serving\.baseModel: /m);
  });
});
