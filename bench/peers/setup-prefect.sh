#!/usr/bin/env bash
# Creates the Prefect 3 peer's own venv for `npm run bench` (bench/.venv-prefect by default):
# Prefect is a peer we measure against, not a dependency of Forgeline, so it never enters
# requirements.txt/.venv or CI's bootstrap. Idempotent: a venv whose stamp matches is kept.
#
# Environment:
#   FORGELINE_PREFECT_VENV   where the venv lives (default <repo>/bench/.venv-prefect)
#   FORGELINE_PYTHON         interpreter to create it with (default python3; Prefect 3 needs >= 3.10)
set -euo pipefail

PREFECT_VERSION=3.9.1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${FORGELINE_PREFECT_VENV:-$ROOT/bench/.venv-prefect}"
STAMP="$VENV/.forgeline-prefect-version"
PY="${FORGELINE_PYTHON:-python3}"

if [[ -x "$VENV/bin/prefect" && "$(cat "$STAMP" 2>/dev/null)" == "$PREFECT_VERSION" ]]; then
  echo "setup-prefect: prefect $PREFECT_VERSION already in $VENV"
  exit 0
fi
command -v "$PY" >/dev/null 2>&1 || { echo "setup-prefect: $PY not found; set FORGELINE_PYTHON to a Python >= 3.10" >&2; exit 2; }
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
  { echo "setup-prefect: $("$PY" --version 2>&1) is too old for Prefect 3 (needs >= 3.10); set FORGELINE_PYTHON" >&2; exit 2; }

echo "setup-prefect: installing prefect==$PREFECT_VERSION into $VENV"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "prefect==$PREFECT_VERSION"
echo "$PREFECT_VERSION" > "$STAMP"
echo "setup-prefect: done ($("$VENV/bin/prefect" version 2>/dev/null | head -1 || true))"
