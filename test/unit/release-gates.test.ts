import assert from 'node:assert/strict';
import { evaluateGates } from '../../src/contracts/release-gates';
import type { Gate } from '../../src/contracts/release-spec';

const report = {
  metrics: {
    exact_match: { value: 0.41, ci: [0.35, 0.47] as [number, number], delta: 0.3, deltaCi: [0.22, 0.38] as [number, number] },
    perplexity: { value: 12.5 },
  },
};
const gate = (metric: string, op: Gate['op'], threshold: number, on: Gate['on'] = 'value'): Gate => ({ metric, op, threshold, on });

describe('evaluateGates (pure release gate policy)', function () {
  it('passes when every gate holds, and says so per gate', function () {
    const v = evaluateGates(report, [gate('exact_match', '>=', 0.4), gate('perplexity', '<', 20), gate('exact_match', '>', 0.1, 'delta')]);
    assert.equal(v.passed, true);
    assert.deepEqual(v.results.map((r) => r.reason), ['exact_match 0.41 >= 0.4', 'perplexity 12.5 < 20', 'Δexact_match 0.3 > 0.1']);
  });

  it('fails with the metric, its value and the threshold in the reason', function () {
    const v = evaluateGates(report, [gate('exact_match', '>=', 0.5)]);
    assert.equal(v.passed, false);
    assert.equal(v.results[0]!.reason, 'exact_match 0.41 < 0.5 (gate exact_match >= 0.5)');
    assert.equal(v.results[0]!.actual, 0.41);
  });

  it('handles every operator at its boundary', function () {
    const at = (op: Gate['op']) => evaluateGates({ metrics: { m: { value: 1 } } }, [gate('m', op, 1)]).passed;
    assert.deepEqual([at('>='), at('>'), at('<='), at('<')], [true, false, true, false]);
  });

  it('fails a gate whose metric or delta is missing, or not finite', function () {
    const v = evaluateGates(report, [gate('rouge_l', '>=', 0.1), gate('perplexity', '<', 1, 'delta')]);
    assert.equal(v.passed, false);
    assert.match(v.results[0]!.reason, /metric rouge_l is not in the eval report/);
    assert.match(v.results[1]!.reason, /no comparator delta for perplexity/);
    assert.equal(evaluateGates({ metrics: { m: { value: NaN } } }, [gate('m', '>', 0)]).passed, false);
  });

  it('passes vacuously with no gates', function () {
    assert.deepEqual(evaluateGates(report, []), { passed: true, results: [] });
  });
});
