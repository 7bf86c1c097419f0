#!/usr/bin/env bash
# Creates the Evidently peer's own venv for the drift benchmark (bench/.venv-evidently by default):
# Evidently is a peer we measure against and the source of the reference numbers in
# test/unit/drift-evidently.test.ts, not a dependency of Forgeline, so it never enters
# requirements.txt/.venv or CI's bootstrap. Idempotent: a venv whose stamp matches is kept.
#
# Environment:
#   FORGELINE_EVIDENTLY_VENV   where the venv lives (default <repo>/bench/.venv-evidently)
#   FORGELINE_PYTHON           interpreter to create it with (default python3; needs >= 3.10)
set -euo pipefail

EVIDENTLY_VERSION=0.7.23
PANDAS_VERSION=2.3.3
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${FORGELINE_EVIDENTLY_VENV:-$ROOT/bench/.venv-evidently}"
STAMP="$VENV/.forgeline-evidently-version"
PY="${FORGELINE_PYTHON:-python3}"

WANT="evidently==$EVIDENTLY_VERSION pandas==$PANDAS_VERSION"
if [[ -x "$VENV/bin/python" && "$(cat "$STAMP" 2>/dev/null)" == "$WANT" ]]; then
  echo "setup-evidently: evidently $EVIDENTLY_VERSION already in $VENV"
  exit 0
fi
command -v "$PY" >/dev/null 2>&1 || { echo "setup-evidently: $PY not found; set FORGELINE_PYTHON to a Python >= 3.10" >&2; exit 2; }
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
  { echo "setup-evidently: $("$PY" --version 2>&1) is too old (needs >= 3.10); set FORGELINE_PYTHON" >&2; exit 2; }

echo "setup-evidently: installing evidently==$EVIDENTLY_VERSION into $VENV"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# evidently 0.7.23 imports pandas internals that pandas 3 removed (infer_dtype_from_object): pin pandas 2.
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "evidently==$EVIDENTLY_VERSION" "pandas==$PANDAS_VERSION" 2>&1 | { grep -v "^WARNING: Location" || true; }
# Stamp only a venv whose Evidently imports (a broken one is rebuilt next time).
versions="$("$VENV/bin/python" -c 'import evidently, sklearn, numpy, pandas; from evidently.legacy.metrics.data_drift import embedding_drift_methods; print("evidently", evidently.__version__, "scikit-learn", sklearn.__version__, "numpy", numpy.__version__, "pandas", pandas.__version__)')"
echo "$WANT" > "$STAMP"
echo "setup-evidently: done ($versions)"
