import assert from 'node:assert/strict';
import { checkDrift, type DriftMethod, type DriftOptions, type Embeddings } from '../../src/drift';
import { fitSgdLogistic, MODEL_DEFAULTS } from '../../src/drift/model';
import { Rng } from '../../src/drift/random';

/**
 * Agreement with Evidently 0.7.23 (scikit-learn 1.9.1) on the same arrays. The numbers below
 * were printed by `bench/.venv-evidently/bin/python bench/peers/evidently_fixtures.py`, whose
 * generator this function mirrors bit for bit (a 32-bit LCG; the sum of 12 uniforms minus 6,
 * exact in float64, rounded once to float32).
 */
function fixture(seed: number, rows: number, cols: number, { shift = 0, shiftedCols = 0, scale = 1 } = {}): Embeddings {
  let state = seed >>> 0;
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < 12; k++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        s += state / 4294967296;
      }
      data[i * cols + j] = (s - 6) * scale + (j < shiftedCols ? shift : 0);
    }
  }
  return { rows, cols, data };
}

const REF = fixture(1, 800, 32, { scale: 0.18 });
const CASES: Record<string, Embeddings> = {
  'no-drift': fixture(7, 700, 32, { scale: 0.18 }),
  drift: fixture(3, 700, 32, { shift: 0.09, shiftedCols: 16, scale: 0.18 }),
  slight: fixture(4, 700, 32, { shift: 0.02, shiftedCols: 32, scale: 0.18 }),
};

/** Evidently's [score, drifted] per case and method configuration. */
const EVIDENTLY: Record<string, Record<string, [number, boolean]>> = {
  'no-drift': {
    model: [0.49621041331186255, false],
    'model-bootstrap': [0.49621041331186255, false],
    mmd: [0.0, false],
    'mmd-bootstrap': [0.0, true],
    ratio: [0.03125, false],
    distance: [0.0484306775033474, false],
    'distance-cosine': [0.8702067136764526, true],
    'distance-bootstrap': [0.0484306775033474, false],
  },
  drift: {
    model: [0.9009983896940419, true],
    'model-bootstrap': [0.9009983896940419, true],
    mmd: [0.04176396131515503, true],
    'mmd-bootstrap': [0.04176396131515503, true],
    ratio: [0.53125, true],
    distance: [0.3590807616710663, true],
    'distance-cosine': [1.1692367792129517, true],
    'distance-bootstrap': [0.3590807616710663, true],
  },
  slight: {
    model: [0.6213276078010378, true],
    'model-bootstrap': [0.6213276078010378, true],
    mmd: [0.004057884216308594, false],
    'mmd-bootstrap': [0.004057884216308594, true],
    ratio: [0.59375, true],
    distance: [0.12162728607654572, false],
    'distance-cosine': [1.0427422523498535, true],
    'distance-bootstrap': [0.12162728607654572, true],
  },
};

const CONFIGS: Record<string, [DriftMethod, DriftOptions]> = {
  model: ['model', {}],
  'model-bootstrap': ['model', { model: { bootstrap: true } }],
  mmd: ['mmd', {}],
  'mmd-bootstrap': ['mmd', { mmd: { bootstrap: true } }],
  ratio: ['ratio', {}],
  distance: ['distance', {}],
  'distance-cosine': ['distance', { distance: { dist: 'cosine' } }],
  'distance-bootstrap': ['distance', { distance: { bootstrap: true } }],
};

/**
 * How close our score must be. Deterministic statistics agree to float32 rounding (Evidently
 * averages float32 columns in pandas); MMD too, since under 1000 rows both use every row for the
 * bandwidth and the statistic. The classifier's AUC depends on the random split and shuffles,
 * which come from other generators here: it agrees within sampling noise (σ ≈ 0.02 for one
 * AUC on 750 held-out rows, ≈ 0.03 for the difference of two; the tolerance is 2σ).
 */
const TOLERANCE: Record<DriftMethod, number> = { distance: 1e-6, ratio: 0, mmd: 1e-6, model: 0.06 };

describe('drift methods agree with Evidently 0.7.23 on the same arrays', function () {
  it('the fixture generator reproduces the arrays Evidently saw (first and last values)', function () {
    assert.deepEqual(Array.from(REF.data.subarray(0, 3)), [-0.19900202751159668, -0.04405100271105766, 0.03152041882276535]);
    assert.equal(REF.data[799 * 32 + 31], 0.10850293189287186);
    assert.equal(CASES.drift!.data[699 * 32], -0.11159448325634003);
  });

  for (const [name, current] of Object.entries(CASES)) {
    it(`${name}: same verdict for every method and configuration, scores within tolerance`, function () {
      for (const [config, [method, options]] of Object.entries(CONFIGS)) {
        const [score, drifted] = EVIDENTLY[name]![config]!;
        const ours = checkDrift(REF, current, method, options);
        assert.equal(ours.drifted, drifted, `${config}: ours ${ours.drifted} (score ${ours.score}, threshold ${ours.threshold}), Evidently ${drifted} (score ${score})`);
        assert.ok(Math.abs(ours.score - score) <= TOLERANCE[method], `${config}: score ${ours.score}, Evidently ${score}`);
      }
    });
  }

  it("the classifier's optimizer matches SGDClassifier(loss='log_loss') update for update (no shuffling: same order)", function () {
    // scikit-learn: SGDClassifier(loss="log_loss", shuffle=False).fit(vstack([REF, drift]), [1]*800 + [0]*700)
    const coef = [
      -2.5136243517593235, -2.1099937807787867, -1.0579573159029827, -2.34225592196505, -2.207475471915544, -1.618136423299421, -1.7148458055025442, -0.2783228165200374, -2.853281348593284, -2.005107633921942, -1.5135849673717132,
      -2.3192998428809157, -1.4612831162381978, -1.4374897166338498, -3.328628672936425, -1.9853492304572375, -1.9979987666664194, 1.2616320349610497, 1.7992187361336622, 1.6505140214974394, 1.6330363284292382, 0.43445516562113146,
      1.2284371146262942, 1.1366958818262365, 0.7181350740612235, 0.09011579415072317, -0.06904112740827571, 0.3446339947473462, 1.4373111821857973, -0.8544657670339303, -1.6335317370506257, -0.362845717104056,
    ];
    const cur = CASES.drift!;
    const x = new Float64Array((REF.rows + cur.rows) * 32);
    x.set(REF.data);
    x.set(cur.data, REF.rows * 32);
    const y = Int8Array.from({ length: REF.rows + cur.rows }, (_, i) => (i < REF.rows ? 1 : -1));
    const model = fitSgdLogistic(x, y, 32, { ...MODEL_DEFAULTS, shuffle: false }, new Rng(0));
    assert.equal(model.epochs, 6, 'n_iter_');
    assert.ok(Math.abs(model.intercept - -5.360553850138153) < 1e-9, `intercept ${model.intercept}`);
    model.coef.forEach((c, k) => assert.ok(Math.abs(c - coef[k]!) < 1e-9, `coef[${k}] ${c} vs ${coef[k]}`));
  });
});
