# shellcheck shell=bash
# Shared helpers for the scripts in scripts/.  Source it, do not execute it:
#   . "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
#
# Defines REPO_ROOT, LOCAL_DIR (.local/, gitignored) and small helpers:
#   log MSG          one-line status message on stderr, prefixed with the script tag
#   die MSG          log + exit 1
#   apt_install PKG  install Debian packages non-interactively (root only); runs
#                    `apt-get update` only when the package lists are missing/stale

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
LOCAL_DIR="$REPO_ROOT/.local"
: "${SCRIPT_TAG:=$(basename "${BASH_SOURCE[1]:-$0}" .sh)}"

log() { printf '%s: %s\n' "$SCRIPT_TAG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# apt_install PKG... — quiet, idempotent.  Output goes to .local/apt.log and is
# shown only on failure.
apt_install() {
    [ "$(id -u)" -eq 0 ] || die "need root to install Debian package(s): $* (install them manually)"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
    mkdir -p "$LOCAL_DIR"
    local apt_log="$LOCAL_DIR/apt.log"
    local -a apt_opts=(-y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
                       -o Dpkg::Options::=--force-confold)
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only if one of the packages has no install candidate.
    local pkg need_update=0
    for pkg in "$@"; do
        if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [^(]'; then
            need_update=1
        fi
    done
    if [ "$need_update" -eq 1 ]; then
        log "apt-get update"
        apt-get update -q -o DPkg::Lock::Timeout=300 >>"$apt_log" 2>&1 \
            || { tail -n 20 "$apt_log" >&2; die "apt-get update failed (see $apt_log)"; }
    fi
    log "apt-get install $*"
    if ! apt-get install "${apt_opts[@]}" "$@" >>"$apt_log" 2>&1; then
        # stale lists (404 on a superseded .deb): refresh once and retry
        log "apt-get install failed; retrying after apt-get update"
        apt-get update -q -o DPkg::Lock::Timeout=300 >>"$apt_log" 2>&1 || true
        apt-get install "${apt_opts[@]}" "$@" >>"$apt_log" 2>&1 \
            || { tail -n 20 "$apt_log" >&2; die "apt-get install $* failed (see $apt_log)"; }
    fi
}
