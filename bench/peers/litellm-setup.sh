#!/usr/bin/env bash
# Creates the LiteLLM proxy peer's own venv for the gateway benchmark (bench/gateway.ts):
# LiteLLM is a peer we measure against, not a dependency of Forgeline, so it never enters
# requirements.lock/.venv or CI's bootstrap. Idempotent: a venv whose stamp matches is kept.
#
# Environment:
#   FORGELINE_LITELLM_VENV   where the venv lives (default <repo>/bench/.tmp/venv-litellm)
#   FORGELINE_PYTHON         interpreter to create it with (default python3; LiteLLM needs >= 3.9)
set -euo pipefail

LITELLM_VERSION=1.105.7 # newer ones pin litellm-proxy-extras / litellm-enterprise builds the registry here does not serve
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${FORGELINE_LITELLM_VENV:-$ROOT/bench/.tmp/venv-litellm}"
STAMP="$VENV/.forgeline-litellm-version"
PY="${FORGELINE_PYTHON:-python3}"

if [[ -x "$VENV/bin/litellm" && "$(cat "$STAMP" 2>/dev/null)" == "$LITELLM_VERSION" ]]; then
  echo "litellm-setup: litellm[proxy] $LITELLM_VERSION already in $VENV"
  exit 0
fi
command -v "$PY" >/dev/null 2>&1 || { echo "litellm-setup: $PY not found; set FORGELINE_PYTHON" >&2; exit 2; }
echo "litellm-setup: installing litellm[proxy]==$LITELLM_VERSION into $VENV"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "litellm[proxy]==$LITELLM_VERSION" 2>&1 |
  { grep -v -e "^WARNING: Location 'file://.*' is ignored" || true; }
"$VENV/bin/litellm" --version >/dev/null 2>&1 || "$VENV/bin/python" -c 'import litellm' ||
  { echo "litellm-setup: the installed litellm does not import" >&2; exit 1; }
echo "$LITELLM_VERSION" > "$STAMP"
echo "litellm-setup: done"
