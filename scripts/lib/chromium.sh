#!/usr/bin/env bash
# Debian's Chromium, for the release report's browser test (test/helpers/chromium.ts calls this).
# Not part of scripts/bootstrap: only that test needs a browser, and the install takes a while.
#
#   bash scripts/lib/chromium.sh     make `chromium` available; prints its path on stdout
#
# When chromium is on PATH (or FORGELINE_CHROMIUM names an executable) nothing is installed.
# Otherwise, as root: `apt-get update` then `apt-get install -y --no-install-recommends chromium`
# (Debian's package; no browser download from npm). Not root: it prints the command to run.
# Concurrent callers serialise on a lock file so one install runs at a time.
#
# Exit codes: 0 ok (path on stdout), 1 the install failed, 2 not root and chromium is absent.
set -euo pipefail

find_chromium() {
  if [ -n "${FORGELINE_CHROMIUM:-}" ] && [ -x "${FORGELINE_CHROMIUM}" ]; then echo "$FORGELINE_CHROMIUM"; return 0; fi
  command -v chromium 2>/dev/null && return 0
  return 1
}

if find_chromium; then exit 0; fi

INSTALL_CMD="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium"
if [ "$(id -u)" != 0 ]; then
  echo "chromium is not installed and this is not root; install it with: sudo sh -c '$INSTALL_CMD'" >&2
  exit 2
fi

LOCK="${TMPDIR:-/tmp}/forgeline-chromium-install.lock"
exec 9>"$LOCK"
flock 9
if find_chromium; then exit 0; fi   # another caller installed it while we waited

start=$(date +%s)
echo "installing Debian chromium: $INSTALL_CMD" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >&2; then
  echo "installing chromium failed; run by hand: $INSTALL_CMD" >&2
  exit 1
fi
echo "installed chromium in $(( $(date +%s) - start ))s" >&2
find_chromium || { echo "apt-get installed chromium but it is not on PATH" >&2; exit 1; }
