"""Reference numbers for test/unit/drift-evidently.test.ts, computed by Evidently itself.

Run with the Evidently peer's venv (bench/peers/setup-evidently.sh makes it):

    bench/.venv-evidently/bin/python bench/peers/evidently_fixtures.py

The fixture matrices come from a generator that uses only integer and exactly rounded float
arithmetic (a 32-bit LCG; a normal approximated by the sum of 12 uniforms minus 6), so the
TypeScript test rebuilds bit-identical float32 arrays without shipping files. Prints JSON: per
case and method, Evidently's (score, drifted), plus scikit-learn's SGDClassifier coefficients
without shuffling (the same optimizer, sample by sample).
"""

import json

import numpy as np
import pandas as pd
from evidently.legacy.metrics.data_drift.embedding_drift_methods import distance, mmd, model, ratio
from sklearn.linear_model import SGDClassifier


def fixture(seed: int, rows: int, cols: int, shift: float = 0.0, shifted_cols: int = 0, scale: float = 1.0) -> np.ndarray:
    state = seed & 0xFFFFFFFF
    out = np.empty((rows, cols), dtype=np.float32)
    for i in range(rows):
        for j in range(cols):
            s = 0.0
            for _ in range(12):
                state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
                s += state / 4294967296.0
            v = (s - 6.0) * scale + (shift if j < shifted_cols else 0.0)
            out[i, j] = np.float32(v)
    return out


# Unit-norm-like scale (components about 1/sqrt(32)), as embeddings are; sizes under 1000 rows so
# that Evidently's bandwidth sample is every row and our MMD is computed on every row too.
REF = fixture(1, 800, 32, scale=0.18)
CASES = {
    "no-drift": (REF, fixture(7, 700, 32, scale=0.18)),
    "drift": (REF, fixture(3, 700, 32, shift=0.09, shifted_cols=16, scale=0.18)),
    "slight": (REF, fixture(4, 700, 32, shift=0.02, shifted_cols=32, scale=0.18)),
}

METHODS = {
    "model": lambda: model(),
    "model-bootstrap": lambda: model(bootstrap=True),
    "mmd": lambda: mmd(),
    "mmd-bootstrap": lambda: mmd(bootstrap=True),
    "ratio": lambda: ratio(),
    "distance": lambda: distance(),
    "distance-cosine": lambda: distance(dist="cosine"),
    "distance-bootstrap": lambda: distance(bootstrap=True),
}


def main() -> None:
    result: dict = {"cases": {}}
    for name, (ref, cur) in CASES.items():
        row = {}
        for mname, make in METHODS.items():
            score, drifted, _ = make()(pd.DataFrame(cur), pd.DataFrame(ref))
            row[mname] = {"score": float(score), "drifted": bool(drifted)}
        result["cases"][name] = row
    # The optimizer alone: no shuffling, so every update is determined by the data order.
    ref, cur = CASES["drift"]
    x = np.vstack([ref, cur]).astype(np.float64)
    y = np.array([1] * len(ref) + [0] * len(cur))
    clf = SGDClassifier(loss="log_loss", shuffle=False, random_state=0).fit(x, y)
    result["sgdNoShuffle"] = {"coef": clf.coef_[0].tolist(), "intercept": float(clf.intercept_[0]), "epochs": int(clf.n_iter_)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
