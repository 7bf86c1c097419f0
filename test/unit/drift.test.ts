import assert from 'node:assert/strict';
import type { TrafficSample } from '../../src/contracts/routing';
import { checkDefaultDrift, checkDrift, checkDriftSpec, DRIFT_METHODS, DriftCheckSpecSchema, DriftInputError, fromRows, type Embeddings } from '../../src/drift';
import { vectorDistance } from '../../src/drift/distance';
import { formatNpy, parseNpy } from '../../src/drift/npy';
import { isRefusal, meanFeedback, meanLength, outputProxies, shareEmpty, shareRefused } from '../../src/drift/output-proxies';
import { Rng } from '../../src/drift/random';
import { rocAuc, stdPopulation, wasserstein1Sorted } from '../../src/drift/stats';

/** Unit-norm Gaussian embeddings, `shift` added to the first `shifted` components before normalising. */
function gaussian(seed: number, rows: number, cols: number, shift = 0, shifted = 0): Embeddings {
  const rng = new Rng(seed);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let k = 0; k < cols; k++) {
      const v = rng.normal() + (k < shifted ? shift : 0);
      data[i * cols + k] = v;
      s += v * v;
    }
    for (let k = 0; k < cols; k++) data[i * cols + k] = data[i * cols + k]! / Math.sqrt(s);
  }
  return { rows, cols, data };
}

const sorted = (xs: number[]) => Float64Array.from(xs).sort();

describe('drift statistics (hand-checkable, scipy/scikit-learn answers)', function () {
  it("Wasserstein-1 of empirical distributions matches scipy's wasserstein_distance", function () {
    assert.equal(wasserstein1Sorted(sorted([0, 1, 3]), sorted([5, 6, 8])), 5);
    assert.equal(wasserstein1Sorted(sorted([0, 1]), sorted([0, 1, 2])), 0.5);
    assert.equal(wasserstein1Sorted(sorted([3.5, -1, 2, 2, 7]), sorted([0.5, 4, 4, 9.25])), 1.8875);
    assert.equal(wasserstein1Sorted(sorted([1]), sorted([1, 1, 1])), 0);
  });

  it('ROC AUC counts ordered pairs, ties as ½ (roc_auc_score)', function () {
    assert.equal(rocAuc([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1]), 0.75);
    assert.equal(rocAuc([1, 0], [0.5, 0.5]), 0.5);
    assert.equal(rocAuc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]), 1);
    assert.ok(Number.isNaN(rocAuc([1, 1], [0.1, 0.2])), 'one class only');
  });

  it('population standard deviation (ddof 0) and the four distances between mean vectors', function () {
    assert.equal(stdPopulation([0, 1, 2, 3]), Math.sqrt(1.25));
    const a = Float64Array.from([1, 0]);
    const b = Float64Array.from([1, 2]);
    assert.equal(vectorDistance('euclidean', a, b), 2);
    assert.equal(vectorDistance('cityblock', a, b), 2);
    assert.equal(vectorDistance('chebyshev', a, b), 2);
    assert.equal(vectorDistance('cosine', a, b), 1 - 1 / Math.sqrt(5));
  });
});

describe('drift methods on hand-checkable inputs', function () {
  it('distance: Euclidean distance between the mean embeddings (1,0) and (1,2) is 2 > 0.2', function () {
    const r = checkDrift(fromRows([[0, 0], [2, 0]]), fromRows([[1, 1], [1, 3]]), 'distance');
    assert.deepEqual([r.score, r.threshold, r.drifted], [2, 0.2, true]);
    assert.deepEqual(r.details, { dist: 'euclidean', bootstrap: false });
  });

  it('mmd: 1-D {0,1} vs {3,4}: γ = 1/median(2,3,3,4)² = 1/9, MMD²_u = 2e^(-1/9) - (2e^(-1) + e^(-16/9) + e^(-4/9))/2', function () {
    const r = checkDrift(fromRows([[0], [1]]), fromRows([[3], [4]]), 'mmd');
    assert.ok(Math.abs(r.score - 1.016702340539287) < 1e-12, String(r.score));
    assert.ok(Math.abs((r.details.gamma as number) - 1 / 9) < 1e-15);
    assert.equal(r.drifted, true);
    // MMD²_u of identical sets is negative (the cross term has the diagonal's ones): reported as 0.
    const same = checkDrift(fromRows([[0], [1]]), fromRows([[0], [1]]), 'mmd');
    assert.deepEqual([same.score, same.drifted], [0, false]);
  });

  it('ratio: one of two components moves by one reference std × 0.89 → share 0.5 > 0.2', function () {
    const ref = fromRows([[0, 0], [1, 1], [2, 2], [3, 3]]);
    const cur = fromRows([[0, 1], [1, 2], [2, 3], [3, 4]]);
    const r = checkDrift(ref, cur, 'ratio');
    assert.deepEqual([r.score, r.drifted, r.details.driftedComponents], [0.5, true, 1]);
    // Component threshold is inclusive (Evidently's >=): W1/std = 1/√1.25 = 0.894.
    assert.equal(checkDrift(ref, cur, 'ratio', { ratio: { componentThreshold: 1 / Math.sqrt(1.25) } }).score, 0.5);
    assert.equal(checkDrift(ref, cur, 'ratio', { ratio: { componentThreshold: 0.9 } }).score, 0);
  });

  it('identical sets: no method reports drift (distance 0, share 0, MMD 0, AUC about ½)', function () {
    const e = gaussian(1, 1500, 24);
    for (const m of DRIFT_METHODS) {
      const r = checkDrift(e, e, m);
      assert.equal(r.drifted, false, `${m}: ${r.score}`);
      if (m === 'distance' || m === 'ratio' || m === 'mmd') assert.equal(r.score, 0, m);
      else assert.ok(Math.abs(r.score - 0.5) < 0.05, `model AUC ${r.score}`);
    }
  });

  it('two samples of one distribution: no drift; a shift of the first 8 of 32 components: drift by every method', function () {
    const ref = gaussian(1, 2500, 32);
    const same = gaussian(2, 2500, 32);
    const shifted = gaussian(3, 2500, 32, 0.6, 8);
    for (const m of DRIFT_METHODS) {
      const a = checkDrift(ref, same, m);
      const b = checkDrift(ref, shifted, m);
      assert.equal(a.drifted, false, `${m} on the same distribution: ${a.score} vs ${a.threshold}`);
      assert.equal(b.drifted, true, `${m} on the shifted one: ${b.score} vs ${b.threshold}`);
      assert.ok(b.score > a.score, m);
      assert.ok(b.seconds >= 0);
    }
    // mmd sampled 2000 of 2500 rows per side (Evidently: all of them).
    assert.deepEqual([checkDrift(ref, same, 'mmd').details.referenceRows, checkDrift(ref, same, 'mmd', { mmd: { maxRows: Infinity } }).details.referenceRows], [2000, 2500]);
  });

  it('is deterministic given the seed; another seed draws another split', function () {
    const ref = gaussian(1, 800, 16);
    const cur = gaussian(2, 700, 16, 0.2, 4);
    for (const m of DRIFT_METHODS) {
      const { seconds: _a, ...first } = checkDrift(ref, cur, m, { model: { bootstrap: true }, mmd: { bootstrap: true }, distance: { bootstrap: true } });
      const { seconds: _b, ...again } = checkDrift(ref, cur, m, { model: { bootstrap: true }, mmd: { bootstrap: true }, distance: { bootstrap: true } });
      assert.deepEqual(again, first, m);
    }
    assert.notEqual(checkDrift(ref, cur, 'model', { model: { seed: 1 } }).score, checkDrift(ref, cur, 'model').score);
  });

  it("bootstrap thresholds: model's from random AUCs (about 0.5 + 1.645σ), the default check bootstraps below 1000 reference rows", function () {
    const ref = gaussian(1, 900, 16);
    const cur = gaussian(2, 900, 16);
    const r = checkDefaultDrift(ref, cur);
    assert.equal(r.method, 'model');
    assert.equal(r.details.bootstrap, true);
    // AUC of random scores on 900 + 900 held-out rows: σ = √((n₁+n₂+1)/(12 n₁ n₂)) ≈ 0.0136.
    assert.ok(r.threshold > 0.51 && r.threshold < 0.54, `threshold ${r.threshold}`);
    assert.equal(checkDefaultDrift(gaussian(1, 1000, 16), cur).details.bootstrap, false);
    const d = checkDrift(ref, cur, 'distance', { distance: { bootstrap: true } });
    assert.ok(d.threshold > 0 && d.threshold < 0.2, `distance bootstrap threshold ${d.threshold}`);
  });

  it('refuses bad input with the side, the position and the fix', function () {
    const ok = fromRows([[0, 1], [1, 0]]);
    assert.throws(() => checkDrift(ok, fromRows([[0, 1, 2], [1, 0, 2]]), 'distance'), (e: Error) => e instanceof DriftInputError && /reference has 2 components per row, current has 3/.test(e.message));
    assert.throws(() => checkDrift(ok, fromRows([[0, 1], [NaN, 0]]), 'distance'), /current: non-finite value NaN at row 1, column 0/);
    assert.throws(() => checkDrift(fromRows([[0, 1]]), ok, 'distance'), /reference: 1 row\(s\); a drift check needs at least 2/);
    // 2 + 2 rows split in halves of 2: some seeds leave a half with one side only.
    const errors = Array.from({ length: 10 }, (_, seed) => {
      try {
        checkDrift(ok, ok, 'model', { model: { seed } });
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    }).filter((m) => m !== '');
    assert.ok(errors.length > 0);
    for (const m of errors) assert.match(m, /^model: the (training|held-out) half holds only (reference|current) rows \(2 reference, 2 current\); use more rows or another method$/);
  });
});

describe('drift check spec (DriftCheckSpecSchema)', function () {
  it("defaults to the monitor's method with Evidently's options, and refuses options of another method", function () {
    assert.deepEqual(DriftCheckSpecSchema.parse({}), { method: 'model' });
    const bad = DriftCheckSpecSchema.safeParse({ method: 'ratio', maxRows: 100 });
    assert.equal(bad.success, false);
    assert.match(bad.error!.issues[0]!.message, /maxRows does not apply to method ratio \(it takes threshold, componentThreshold\)/);
    assert.match(DriftCheckSpecSchema.safeParse({ method: 'pca' }).error!.issues[0]!.message, /method: expected one of model, mmd, ratio, distance/);
  });

  it('runs what it names: a threshold of 0.01 makes a small distance drift', function () {
    const ref = gaussian(1, 500, 8);
    const cur = gaussian(2, 500, 8);
    const loose = checkDriftSpec(ref, cur, DriftCheckSpecSchema.parse({ method: 'distance' }));
    const tight = checkDriftSpec(ref, cur, DriftCheckSpecSchema.parse({ method: 'distance', threshold: 0.01 }));
    assert.equal(loose.score, tight.score);
    assert.deepEqual([loose.drifted, tight.drifted, tight.threshold], [false, true, 0.01]);
    assert.equal(checkDriftSpec(ref, cur, DriftCheckSpecSchema.parse({})).details.bootstrap, true, 'default method below 1000 rows');
  });
});

describe('.npy reader (strict: 2-D little-endian float32, C order)', function () {
  /** What numpy.save writes for np.array([[1, 2, 3], [4, 5, 6.5]], dtype='<f4'). */
  const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  const npy = (h: string, payload: Float32Array, version = 1) => {
    const padded = h + ' '.repeat(64 - ((10 + h.length + 1) % 64)) + '\n';
    const pre = version === 1 ? Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, padded.length & 0xff, padded.length >> 8]) : Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0, padded.length & 0xff, padded.length >> 8, 0, 0]);
    return Buffer.concat([pre, Buffer.from(padded, 'latin1'), Buffer.from(payload.buffer)]);
  };
  const values = Float32Array.from([1, 2, 3, 4, 5, 6.5]);

  it('reads numpy.save output (versions 1 and 2) and writes what it reads', function () {
    for (const v of [1, 2]) {
      const e = parseNpy(npy(header, values, v), 'x.npy');
      assert.deepEqual([e.rows, e.cols, Array.from(e.data)], [2, 3, [1, 2, 3, 4, 5, 6.5]]);
    }
    const bytes = formatNpy({ rows: 2, cols: 3, data: values });
    assert.equal((bytes.readUInt16LE(8) + 10) % 64, 0, 'header padded to 64 bytes');
    assert.deepEqual(bytes, npy(header, values));
  });

  it('names the file, the problem and the fix for everything else', function () {
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.from('hello world, not numpy'), /^bad.npy: not a .npy file/],
      [npy(header.replace('<f4', '<f8'), values), /dtype <f8 is not supported: expected little-endian float32 \('<f4'\); convert with arr.astype\('<f4'\)/],
      [npy(header.replace('<f4', '>f4'), values), /dtype >f4 is not supported/],
      [npy(header.replace('False', 'True'), values), /Fortran order: expected C order/],
      [npy(header.replace('(2, 3)', '(6,)'), values), /shape \(6,\) is not 2-D/],
      [npy(header.replace('(2, 3)', '(1, 2, 3)'), values), /shape \(1, 2, 3\) is not 2-D/],
      [npy(header.replace('(2, 3)', '(3, 3)'), values), /data is 24 bytes, shape \(3, 3\) of float32 needs 36/],
      [npy(header, values).subarray(0, 50), /truncated header/],
      [npy("{'shape': (2, 3)}", values), /header lacks descr, fortran_order or shape/],
    ];
    for (const [buf, re] of cases) assert.throws(() => parseNpy(buf, 'bad.npy'), (e: Error) => e instanceof DriftInputError && /^bad.npy: /.test(e.message) && re.test(e.message), String(re));
  });
});

describe('output proxies', function () {
  const answers = ['Paris is the capital of France.', '', '   ', "I'm sorry, but I can't help with that.", 'As an AI, I have no opinion.', 'Sure: 42'];

  it('share of empty and refused answers, mean length in characters and words', function () {
    assert.equal(shareEmpty(answers), 2 / 6);
    assert.equal(shareRefused(answers), 2 / 6);
    assert.equal(isRefusal('I cannot help with that request'), true);
    assert.equal(isRefusal('I can help with that'), false);
    assert.equal(isRefusal('Sorry for the delay: here it is'), false);
    assert.deepEqual(meanLength(['ab cd', 'é']), { chars: 3, words: 1.5 });
    assert.equal(shareEmpty([]), null);
    assert.equal(meanFeedback([1, undefined, 0, NaN, 0.5]), 0.5);
  });

  it('over a traffic window: failed requests count as errors, not as empty answers', function () {
    const sample = (completion: string, status: number, feedback?: number): TrafficSample => ({ requestId: completion, version: 'v', at: 0, prompt: 'q', completion, status, ...(feedback === undefined ? {} : { feedback }) });
    const p = outputProxies([sample('fine answer', 200, 1), sample('', 200), sample('', 502), sample("I'm unable to do that.", 200, 0)]);
    assert.deepEqual(p, { samples: 4, errorRate: 0.25, emptyShare: 1 / 3, refusedShare: 1 / 3, meanLength: { chars: (11 + 0 + 22) / 3, words: (2 + 0 + 5) / 3 }, meanFeedback: 0.5, feedbackCount: 2 });
  });
});
