#!/usr/bin/env bash
# Bootstrap the venv, then run `motcua up` (extra arguments are passed through).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/motcua up "$@"
