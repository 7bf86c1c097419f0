"""The Evidently peer of the drift benchmark (bench/drift.ts): Evidently's embedding drift
methods with their defaults on the same .npy arrays as ours, each call timed alone.

    bench/.venv-evidently/bin/python bench/peers/evidently_drift.py --reference R.npy --current C.npy [--method model ...]

Prints one JSON object: {versions, results: [{method, drifted, score, seconds}]}. `seconds` is the
method call only (what Evidently's EmbeddingsDriftMetric spends on the verdict; the metric's t-SNE
plot of 5000 points is left out), with the frames built beforehand.
"""

import argparse
import json
import time

import numpy as np
import pandas as pd
import sklearn
import evidently
from evidently.legacy.metrics.data_drift.embedding_drift_methods import distance, mmd, model, ratio

METHODS = {"model": model, "mmd": mmd, "ratio": ratio, "distance": distance}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--current", required=True)
    ap.add_argument("--method", action="append", choices=list(METHODS))
    args = ap.parse_args()
    ref = np.load(args.reference)
    cur = np.load(args.current)
    results = []
    for name in args.method or list(METHODS):
        # Fresh frames per call: the model method adds a column to its inputs.
        r, c = pd.DataFrame(ref), pd.DataFrame(cur)
        t0 = time.perf_counter()
        score, drifted, _ = METHODS[name]()(c, r)
        seconds = time.perf_counter() - t0
        results.append({"method": name, "drifted": bool(drifted), "score": float(score), "seconds": seconds})
    versions = {"evidently": evidently.__version__, "scikit-learn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__}
    print(json.dumps({"versions": versions, "results": results}))


if __name__ == "__main__":
    main()
