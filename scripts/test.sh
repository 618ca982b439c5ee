#!/usr/bin/env bash
# The one command that runs the whole test suite from nothing:
#   venv (bootstrap.sh) -> promtool (Debian `prometheus`), Chromium, docker-compose, wrk
#   -> PostgreSQL -> Kafka -> pytest
# Extra arguments go to pytest, e.g. scripts/test.sh -k kafka -x
# Kafka and PostgreSQL are left running afterwards (stop them with
# scripts/kafka.sh stop / scripts/postgres.sh stop).
set -euo pipefail
SCRIPT_TAG=test
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$REPO_ROOT"

bash scripts/bootstrap.sh

# promtool (used by the metrics/alert-rule tests)
if ! command -v promtool >/dev/null 2>&1; then
    apt_install prometheus
    command -v promtool >/dev/null 2>&1 || die "promtool still missing after installing prometheus"
fi

# Debian's chromium (the dashboard's browser tests drive it with Playwright; never `playwright install`)
if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium
    [ -x /usr/bin/chromium ] || die "chromium still missing after installing it"
fi

# docker-compose (Compose file validation only: no container engine runs here)
if ! command -v docker-compose >/dev/null 2>&1; then
    apt_install docker-compose
fi

# wrk (the HTTP benchmarks' load tool: the suite runs every benchmark at its smallest, tests/bench)
if ! command -v wrk >/dev/null 2>&1; then
    apt_install wrk
    command -v wrk >/dev/null 2>&1 || die "wrk still missing after installing it"
fi

bash scripts/postgres.sh start >/dev/null
bash scripts/kafka.sh start >/dev/null

export MOTCUA_TEST_KAFKA="127.0.0.1:${KAFKA_PORT:-9092}"
export MOTCUA_TEST_DATABASE_URL="postgresql+psycopg://motcua:motcua@127.0.0.1:${PGPORT:-5433}/motcua"
log "MOTCUA_TEST_KAFKA=$MOTCUA_TEST_KAFKA MOTCUA_TEST_DATABASE_URL=$MOTCUA_TEST_DATABASE_URL"
exec "$REPO_ROOT/.venv/bin/python" -m pytest -q -ra "$@"
