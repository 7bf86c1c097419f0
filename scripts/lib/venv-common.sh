# Helpers shared by the scripts that build a venv of their own (vllm-venv.sh, stores-venv.sh).
# Source it after defining `missing` (prerequisite missing: message, exit 2); nothing runs here.

sha256_of() { local h _; read -r h _ < <(sha256sum "$1"); echo "$h"; }
now_s() { date +%s; }

# pick_python311 WHAT: sets PY to a Python 3.11 (FORGELINE_PYTHON first, then python3.11,
# python3); without one, `missing` names WHAT it is for and how to get it.
pick_python311() {
  local c
  for c in ${FORGELINE_PYTHON:+"$FORGELINE_PYTHON"} python3.11 python3; do
    command -v "$c" >/dev/null 2>&1 || continue
    if [[ "$("$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" == "3.11" ]]; then
      PY="$(command -v "$c")"; return 0
    fi
  done
  missing "Python 3.11 for $1: apt-get install python3.11 python3.11-venv, or set FORGELINE_PYTHON"
}

# pip_quiet PYTHON ARGS...: pip, on stderr, less the warning per package that this machine's extra
# file:// index causes; returns pip's exit status.
pip_quiet() {
  local py="$1" rc; shift
  set +e
  "$py" -m pip --disable-pip-version-check --no-input "$@" 2>&1 |
    { grep -v -e "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory" || true; } >&2
  rc="${PIPESTATUS[0]}"
  set -e
  return "$rc"
}
