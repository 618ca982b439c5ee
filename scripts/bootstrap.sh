#!/usr/bin/env bash
# Create/refresh the project virtualenv: .venv (Python 3.11) with `pip install -e '.[dev]'`,
# every version pinned by constraints.txt.
# Idempotent and fast when nothing changed: pip runs only when .venv/.bootstrap-stamp is
# missing or older than pyproject.toml or constraints.txt (delete the stamp to force a
# reinstall).
set -euo pipefail
SCRIPT_TAG=bootstrap
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

VENV="$REPO_ROOT/.venv"
STAMP="$VENV/.bootstrap-stamp"
cd "$REPO_ROOT"

# The distribution's interpreter first: Debian builds it with profile-guided and link-time
# optimisation and links it statically, as the python:3.11-slim image's is built. A plain
# build (pyenv's default) ran the projection and the batch path 5-10 % slower
# (docs/benchmarks.md, sixteenth pass). $PYTHON still wins when set.
find_python() {
    local c
    for c in "${PYTHON:-}" /usr/bin/python3.11 python3.11 python3; do
        [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 || continue
        if "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

# Python 3.11, on the interpreter find_python picks now (a venv made before on another one is
# made again).
venv_ok() {
    local want
    [ -x "$VENV/bin/python" ] || return 1
    want="$(find_python)" && want="$("$want" -c 'import sys; print(sys.executable)')" || return 1
    "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11)
assert sys._base_executable == sys.argv[1], sys._base_executable' "$want" 2>/dev/null
}

mkdir -p "$LOCAL_DIR"
exec 9>"$LOCAL_DIR/.bootstrap.lock"
flock -w 900 9 || die "timed out waiting for another bootstrap.sh"

if ! venv_ok; then
    py="$(find_python)" || { apt_install python3 python3-venv; py="$(find_python)" \
        || die "no Python 3.11 interpreter found (need python3.11)"; }
    [ -e "$VENV" ] && { log "removing $VENV (broken, or on another interpreter)"; rm -rf "$VENV"; }
    log "creating .venv with $py"
    if ! "$py" -m venv "$VENV" >"$LOCAL_DIR/venv.log" 2>&1; then
        # Debian's python3 needs python3-venv (ensurepip) for `-m venv`
        rm -rf "$VENV"
        apt_install python3-venv python3.11-venv
        "$py" -m venv "$VENV" >"$LOCAL_DIR/venv.log" 2>&1 \
            || { cat "$LOCAL_DIR/venv.log" >&2; die "python -m venv failed"; }
    fi
    rm -f "$STAMP"
fi

if [ -f "$STAMP" ] && [ "$STAMP" -nt "$REPO_ROOT/pyproject.toml" ] \
        && [ "$STAMP" -nt "$REPO_ROOT/constraints.txt" ]; then
    exit 0
fi

log "pip install -c constraints.txt -e '.[dev]' (log: .local/pip.log)"
t0=$SECONDS
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
if ! "$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[dev]' \
        >"$LOCAL_DIR/pip.log" 2>&1; then
    tail -n 30 "$LOCAL_DIR/pip.log" >&2
    die "pip install failed (see .local/pip.log)"
fi
touch "$STAMP"
log "venv ready in $((SECONDS - t0)) s"
