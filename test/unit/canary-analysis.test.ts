import assert from 'node:assert/strict';
import {
  analyzeCanary,
  averageRanks,
  CanaryAnalysisPolicySchema,
  DEFAULT_CANARY_ANALYSIS_POLICY,
  erfc,
  fisherExactGreater,
  logFactorial,
  mannWhitneyU,
  normalSf,
  quantileSorted,
  type CanaryAnalysisPolicyInput,
} from '../../src/contracts/canary-analysis';
import type { VersionMetrics } from '../../src/contracts/routing';

/** |actual - expected| <= rel × |expected| (and exact zeros stay zero). */
function close(actual: number, expected: number, rel = 1e-12, what = '') {
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${what}: ${actual} is not within ${rel} (relative) of ${expected}`);
}

/** A deterministic sample: n values spread evenly over [lo, hi) in a scrambled order. */
function spread(n: number, lo: number, hi: number): number[] {
  return Array.from({ length: n }, (_, i) => lo + ((hi - lo) * ((i * 7919) % n)) / n);
}

function version(v: Partial<VersionMetrics> & { version: string }): VersionMetrics {
  return { requests: 0, errors: 0, latencyMs: [], feedback: [], promptTokens: 0, completionTokens: 0, ...v };
}

const policy = (p: CanaryAnalysisPolicyInput = {}) => CanaryAnalysisPolicySchema.parse(p);

describe('canary analysis statistics (known answers from scipy 1.17.1)', function () {
  it('erfc and the normal tail match scipy.special.erfc / scipy.stats.norm.sf to ~1e-12 across the line', function () {
    const erfcs: Array<[number, number]> = [
      [0, 1.0],
      [0.1, 0.8875370839817152],
      [1, 0.15729920705028516],
      [2.4, 0.0006885138966450789],
      [2.5, 0.00040695201744495886],
      [2.6, 0.000236034416529349],
      [5, 1.5374597944280347e-12],
      [10, 2.0884875837625446e-45],
      [26, 5.663192408856145e-296],
      [-1, 1.8427007929497148],
      [-3, 1.9999779095030015],
    ];
    for (const [x, want] of erfcs) close(erfc(x), want, 1e-12, `erfc(${x})`);
    const sfs: Array<[number, number]> = [
      [0, 0.5],
      [1.959963984540054, 0.025],
      [3, 0.0013498980316300933],
      [8, 6.22096057427174e-16],
      [20, 2.7536241186061556e-89],
      [-2, 0.9772498680518208],
    ];
    for (const [z, want] of sfs) close(normalSf(z), want, 1e-12, `sf(${z})`);
  });

  it('log factorial matches scipy.special.gammaln(n + 1) on both sides of the table', function () {
    const want: Array<[number, number]> = [
      [0, 0],
      [10, 15.104412573075516],
      [256, 1167.2572785628804],
      [257, 1172.8063546477754],
      [1000, 5912.128178488164],
      [123456, 1323904.4924837977],
    ];
    for (const [n, v] of want) close(logFactorial(n), v, 1e-14, `ln ${n}!`);
  });

  it('Mann-Whitney U with ties matches scipy mannwhitneyu(method="asymptotic") for each alternative', function () {
    const x = [1, 2, 2, 3, 5, 7, 8, 8];
    const y = [2, 3, 3, 4, 4, 6, 9];
    const want = { greater: 0.6148326431788308, less: 0.4304760680301897, 'two-sided': 0.8609521360603793 };
    for (const [alt, p] of Object.entries(want) as Array<[keyof typeof want, number]>) {
      const r = mannWhitneyU(x, y, alt);
      assert.equal(r.u, 26, 'U of x (scipy statistic)');
      close(r.pValue, p, 1e-12, `p ${alt}`);
    }
    // Every value tied: no evidence either way.
    assert.equal(mannWhitneyU([5, 5, 5], [5, 5], 'greater').pValue, 1);
  });

  it('average ranks and the tie term', function () {
    const { ranks, tieTerm } = averageRanks([10, 20, 20, 5, 20]);
    assert.deepEqual(Array.from(ranks), [2, 4, 4, 1, 4]);
    assert.equal(tieTerm, 3 ** 3 - 3);
  });

  it("one-sided Fisher's exact test matches scipy fisher_exact(alternative='greater')", function () {
    const cases: Array<[[number, number, number, number], number]> = [
      [[3, 997, 0, 1000], 0.12481240620310154],
      [[10, 990, 2, 998], 0.019005623746425695],
      [[0, 100, 0, 100], 1.0],
      [[50, 950, 30, 970], 0.014781175822397007],
      [[120, 9880, 80, 9920], 0.0027240245655397975],
      [[5, 5, 0, 10], 0.016253869969040248],
      [[0, 50, 5, 45], 1.0],
    ];
    for (const [[a, b, c, d], want] of cases) close(fisherExactGreater(a, b, c, d), want, 1e-9, `fisher ${[a, b, c, d]}`);
  });

  it("quantiles interpolate linearly as numpy's percentile", function () {
    const s = Float64Array.from([5, 1, 9, 3, 7, 2, 8.5, 4]).sort();
    assert.deepEqual([0, 0.5, 0.95, 1].map((q) => quantileSorted(s, q)), [1, 4.5, 8.825, 9]);
  });
});

describe('canary analysis policy (CanaryAnalysisPolicySchema)', function () {
  it('fills every default: confidence 0.98, pass score 0.6, error_rate critical, directions, tolerances, minimum samples', function () {
    const p = DEFAULT_CANARY_ANALYSIS_POLICY;
    assert.equal(p.confidence, 0.98);
    assert.equal(p.passScore, 0.6);
    assert.deepEqual(p.metrics.error_rate, { enabled: true, critical: true, direction: 'lower', tolerance: { relative: 0.5, absolute: 0.01 }, minSamples: 100 });
    assert.deepEqual(p.metrics.latency_p95, { enabled: true, critical: false, direction: 'lower', tolerance: { relative: 0.2, absolute: 10 }, minSamples: 50 });
    assert.deepEqual(p.metrics.feedback_score, { enabled: true, critical: false, direction: 'higher', tolerance: { relative: 0.05, absolute: 0 }, minSamples: 30 });
    // A partial metric keeps the other defaults.
    assert.deepEqual(policy({ metrics: { latency_p95: { critical: true } } }).metrics.latency_p95.tolerance, { relative: 0.2, absolute: 10 });
  });

  it('refuses bad policies with a message naming the field and the fix', function () {
    const msg = (p: unknown) => {
      const r = CanaryAnalysisPolicySchema.safeParse(p);
      assert.equal(r.success, false, `accepted ${JSON.stringify(p)}`);
      return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
    };
    assert.match(msg({ confidence: 1.2 }), /confidence: expected 0.5 < confidence < 1/);
    assert.match(msg({ metrics: { error_rate: { minSamples: 0 } } }), /minSamples: expected at least 1/);
    assert.match(msg({ metrics: { latency_p95: { tolerance: { relative: -1 } } } }), /tolerance.relative: expected >= 0/);
    assert.match(msg({ metrics: { latency_p95: { direction: 'down' } } }), /direction: expected lower or higher/);
    assert.match(msg({ metrics: { error_rate: { enabled: false }, latency_p95: { enabled: false }, feedback_score: { enabled: false } } }), /enable at least one/);
    assert.match(msg({ metrics: { throughput: {} } }), /throughput/);
  });
});

describe('analyzeCanary', function () {
  const goodLatency = spread(400, 80, 120);
  const goodFeedback = spread(200, 0.6, 1.0);
  const stable = version({ version: 'bot@stable', requests: 2000, errors: 10, latencyMs: goodLatency, feedback: goodFeedback });

  it('passes a candidate like stable, every metric Pass, with figures, p-values and thresholds', function () {
    const a = analyzeCanary(stable, version({ version: 'bot@v2', requests: 1900, errors: 9, latencyMs: spread(380, 81, 121), feedback: spread(190, 0.61, 1.0) }));
    assert.equal(a.verdict, 'Pass');
    assert.deepEqual(a.metrics.map((m) => [m.metric, m.verdict]), [['error_rate', 'Pass'], ['latency_p95', 'Pass'], ['feedback_score', 'Pass']]);
    const err = a.metrics[0]!;
    assert.equal(err.stable, 10 / 2000);
    assert.equal(err.candidate, 9 / 1900);
    assert.equal(err.threshold, 0.01); // max(0.01 absolute, 0.5 × 0.5%)
    assert.equal(err.test, 'fisher-exact');
    close(err.pValue!, fisherExactGreater(9, 1891, 10, 1990), 1e-15, 'error-rate p');
    const lat = a.metrics[1]!;
    assert.equal(lat.stable, quantileSorted(Float64Array.from(goodLatency).sort(), 0.95));
    close(lat.threshold, 0.2 * lat.stable!, 1e-15, 'latency tolerance');
    assert.equal(a.score, 1);
    assert.match(a.summary, /^Pass \(3 of 3 metrics passed; bot@v2 vs bot@stable\)/);
    assert.equal(a.summary.includes('\n'), false, 'one line');
  });

  it('fails on a significant error-rate rise beyond tolerance (critical): 8% vs 0.5%', function () {
    const a = analyzeCanary(stable, version({ version: 'bot@bad', requests: 1000, errors: 80, latencyMs: goodLatency, feedback: goodFeedback }));
    assert.equal(a.verdict, 'Fail');
    const err = a.metrics.find((m) => m.metric === 'error_rate')!;
    assert.equal(err.verdict, 'Fail');
    assert.ok(err.pValue! < 1e-10, `p ${err.pValue}`);
    close(err.effect!, 0.08 - 0.005, 1e-12, 'effect');
    assert.match(a.summary, /^Fail \(critical error_rate failed/);
    assert.match(err.reason, /candidate 8% vs stable 0.5%: worse by 7.5 pp > 1 pp tolerated, significant/);
  });

  it('too few samples is Inconclusive, never Fail, however bad the few look', function () {
    const a = analyzeCanary(stable, version({ version: 'bot@v2', requests: 20, errors: 15, latencyMs: spread(20, 900, 1000), feedback: spread(5, 0, 0.1) }));
    assert.equal(a.verdict, 'Inconclusive');
    for (const m of a.metrics) {
      assert.equal(m.verdict, 'Inconclusive', m.metric);
      assert.equal(m.pValue, null);
      assert.match(m.reason, /too few samples/);
    }
    assert.deepEqual(a.metrics[0]!.samples, { stable: 2000, candidate: 20, min: 100 });
    // And when stable is the side lacking traffic.
    const b = analyzeCanary(version({ version: 'bot@stable', requests: 3 }), version({ version: 'bot@v2', requests: 3000, errors: 3000 }));
    assert.equal(b.verdict, 'Inconclusive');
  });

  it('a degradation beyond tolerance that is not significant is Inconclusive (more samples decide)', function () {
    // 3 errors in 150 (2%) vs 0 in 150: +2 pp > 1 pp, but Fisher p = 0.12 >= 0.02.
    const a = analyzeCanary(
      version({ version: 'bot@stable', requests: 150, errors: 0, latencyMs: goodLatency, feedback: goodFeedback }),
      version({ version: 'bot@v2', requests: 150, errors: 3, latencyMs: goodLatency, feedback: goodFeedback }),
    );
    const err = a.metrics[0]!;
    assert.equal(err.verdict, 'Inconclusive');
    close(err.pValue!, fisherExactGreater(3, 147, 0, 150), 1e-15, 'p');
    assert.ok(err.pValue! > 0.02);
    assert.equal(a.verdict, 'Inconclusive', 'the critical metric is undecided');
  });

  it('a significant degradation within tolerance passes', function () {
    // Latency 5% slower everywhere: Mann-Whitney is significant, the p95 rise is under 20%.
    const a = analyzeCanary(stable, version({ version: 'bot@v2', requests: 2000, errors: 10, latencyMs: goodLatency.map((x) => x * 1.05), feedback: goodFeedback }));
    const lat = a.metrics[1]!;
    close(lat.pValue!, 1.1111320191242797e-8, 1e-9, 'scipy mannwhitneyu(candidate, stable, alternative="greater", method="asymptotic")');
    close(lat.stable!, 117.905, 1e-12, 'numpy percentile(stable, 95)');
    assert.equal(lat.verdict, 'Pass');
    assert.match(lat.reason, /within .* ms tolerated/);
    assert.equal(a.verdict, 'Pass');
  });

  it('one non-critical failure passes the step at the default score (2 of 3 >= 0.6); two fail it', function () {
    const slow = goodLatency.map((x) => x * 2);
    const one = analyzeCanary(stable, version({ version: 'bot@v2', requests: 2000, errors: 10, latencyMs: slow, feedback: goodFeedback }));
    assert.equal(one.metrics[1]!.verdict, 'Fail');
    assert.equal(one.verdict, 'Pass');
    const two = analyzeCanary(stable, version({ version: 'bot@v2', requests: 2000, errors: 10, latencyMs: slow, feedback: goodFeedback.map((f) => f / 2) }));
    assert.deepEqual(two.metrics.map((m) => m.verdict), ['Pass', 'Fail', 'Fail']);
    assert.equal(two.verdict, 'Fail');
    assert.match(two.summary, /2 of 3 metrics failed/);
    // Marking latency critical makes its failure alone fail the step.
    const critical = analyzeCanary(stable, version({ version: 'bot@v2', requests: 2000, errors: 10, latencyMs: slow, feedback: goodFeedback }), policy({ metrics: { latency_p95: { critical: true } } }));
    assert.equal(critical.verdict, 'Fail');
  });

  it('a non-critical failure while another metric is undecided is Inconclusive, not Fail', function () {
    const a = analyzeCanary(stable, version({ version: 'bot@v2', requests: 2000, errors: 10, latencyMs: goodLatency.map((x) => x * 2), feedback: [0.9, 0.8] }));
    assert.deepEqual(a.metrics.map((m) => m.verdict), ['Pass', 'Fail', 'Inconclusive']);
    assert.equal(a.verdict, 'Inconclusive');
  });

  it('feedback is higher-is-better: lower candidate scores fail, higher ones pass', function () {
    const only = policy({ metrics: { error_rate: { enabled: false }, latency_p95: { enabled: false }, feedback_score: { critical: true } } });
    const worse = analyzeCanary(stable, version({ version: 'bot@v2', feedback: goodFeedback.map((f) => f - 0.2) }), only);
    assert.equal(worse.verdict, 'Fail');
    close(worse.metrics[0]!.effect!, 0.2, 1e-9, 'effect');
    const better = analyzeCanary(stable, version({ version: 'bot@v2', feedback: goodFeedback.map((f) => f + 0.2) }), only);
    assert.equal(better.verdict, 'Pass');
    assert.ok(better.metrics[0]!.effect! < 0);
    assert.ok(better.metrics[0]!.pValue! > 0.99);
  });

  it('disabled metrics are left out; invalid counts are Inconclusive with the reason', function () {
    const a = analyzeCanary(stable, version({ version: 'bot@v2', requests: 10, errors: 11 }), policy({ metrics: { latency_p95: { enabled: false }, feedback_score: { enabled: false } } }));
    assert.deepEqual(a.metrics.map((m) => m.metric), ['error_rate']);
    assert.equal(a.verdict, 'Inconclusive');
    assert.match(a.metrics[0]!.reason, /invalid counts for bot@v2: 11 errors of 10 requests/);
  });

  it('is deterministic and JSON-safe (it runs in workflow code; the result goes into the history)', function () {
    const cand = version({ version: 'bot@v2', requests: 1000, errors: 80, latencyMs: [...goodLatency, NaN], feedback: [] });
    const a = analyzeCanary(stable, cand);
    assert.deepEqual(analyzeCanary(stable, cand), a);
    assert.deepEqual(JSON.parse(JSON.stringify(a)), a);
    assert.equal(a.metrics[1]!.samples.candidate, 400, 'non-finite samples dropped');
    assert.equal(a.metrics[2]!.candidate, null);
  });
});
