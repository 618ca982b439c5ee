"""`motcua metrics rebuild`: the KPI projection rebuilt from the case log equals the live one,
row for row; a damaged projection is repaired; the service resumes after it without counting
anything twice."""

import asyncio
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from metrics.rebuild import rebuild
from metrics.settings import MetricsSettings
from services.clock import LOCAL_TZ
from services.db import make_engine
from tests.factories import case_body
from tests.harness import Stack, StackFactory
from tests.metrics.helpers import post_lifecycles, raise_overdue_notices

TABLES = {
    "metrics_counters": "name, scope, period",
    "metrics_cases": "case_code",
    "metrics_processed_events": "event_id",
}


def snapshot(engine: Engine, group: str) -> dict[str, Any]:
    with engine.connect() as conn:
        out: dict[str, Any] = {
            table: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}"))]
            for table, key in TABLES.items()
        }
        out["positions"] = [tuple(r) for r in conn.execute(text(
            "SELECT topic, partition, next_offset FROM metrics_positions WHERE group_id = :g "
            "ORDER BY topic, partition"), {"g": group})]
    # When an id was processed is not a fact of the projection.
    out["metrics_processed_events"] = sorted(r[0] for r in out["metrics_processed_events"])
    return out


def damage(engine: Engine) -> None:
    """What a bug or a new KPI leaves behind: counters missing and wrong, a case forgotten."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM metrics_counters WHERE period LIKE '____-__'"))
        conn.execute(text("UPDATE metrics_counters SET value = value + 7 WHERE name = 'received'"))
        conn.execute(text("DELETE FROM metrics_cases WHERE case_code IN "
                          "(SELECT case_code FROM metrics_cases ORDER BY case_code LIMIT 5)"))


def received_all_time(stack: Stack, year: str) -> int:
    r = stack.client.get("/v1/kpis", params={"kpi": "received", "period": year})
    return int(r.json()["items"][0]["numerator"])


def live_projection(stack: Stack, n: int, seed: int) -> None:
    cases = post_lifecycles(stack, n=n, seed=seed)
    raise_overdue_notices(stack, [pc.code for pc in cases if pc.code])


def test_rebuild_from_the_embedded_log_equals_the_live_projection(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory("embedded", "sqlite")
    live_projection(stack, n=250, seed=909)
    settings: MetricsSettings = stack.settings["metrics"]
    group = settings.topic_prefix + "metrics"
    year = str(datetime.now(LOCAL_TZ).year)
    received = received_all_time(stack, year)
    stack.close()  # the consumer must be stopped: the rebuild runs in its own process
    engine = make_engine(settings.resolved_database_url("metrics"))
    live = snapshot(engine, group)
    assert len(live["metrics_counters"]) > 1000 and live["positions"]
    damage(engine)
    assert snapshot(engine, group) != live

    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "METRICS_DATABASE_URL")}
    env.update({"MOTCUA_DATA_DIR": str(settings.data_dir),
                "MOTCUA_TOPIC_PREFIX": settings.topic_prefix})
    done = subprocess.run([sys.executable, "-m", "motcua.cli", "metrics", "rebuild",
                           "--batch-size", "300"], env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    assert "rebuild [" in done.stderr and "100.0%" in done.stderr  # progress on stderr
    assert "rebuilt the KPI projection from" in done.stdout
    assert snapshot(engine, group) == live
    engine.dispose()

    # The service resumes after the rebuilt positions: nothing is counted twice.
    stack.restart()
    stack.settled()
    assert received_all_time(stack, year) == received
    r = stack.client.post("/v1/cases", json=case_body(received_at=None))
    assert r.status_code == 201
    stack.settled()
    assert received_all_time(stack, year) == received + 1


def test_rebuild_from_kafka_into_postgres_equals_the_live_projection(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory("kafka", "postgres")
    live_projection(stack, n=120, seed=3131)
    settings: MetricsSettings = stack.settings["metrics"]
    group = settings.topic_prefix + "metrics"
    stack.close()
    engine = make_engine(settings.resolved_database_url("metrics"))
    live = snapshot(engine, group)
    damage(engine)
    seen: list[int] = []
    # Small chunks and counters written every 50 rows: the same counter row gathered, written,
    # and added to again, as a long log does with the defaults.
    report = asyncio.run(rebuild(settings, progress=lambda r: seen.append(r.read),
                                 batch_size=100, chunk_events=150, flush_counters=50))
    assert snapshot(engine, group) == live
    assert report.read == report.total == sum(p[2] for p in live["positions"])
    # Every record of this log is a distinct event; the ids stored are those of the events
    # without a subject sequence (the overdue notices posted straight onto the log).
    assert report.applied == report.read and report.duplicates == 0
    assert 0 < len(live["metrics_processed_events"]) < report.applied
    assert seen == sorted(seen) and seen[-1] == report.read and len(seen) > 1
    engine.dispose()


def test_a_failed_rebuild_changes_nothing(stack_factory: StackFactory, tmp_path: Path) -> None:
    stack = stack_factory("embedded", "sqlite")
    for _ in range(3):
        assert stack.client.post("/v1/cases", json=case_body()).status_code == 201
    stack.settled()
    settings: MetricsSettings = stack.settings["metrics"]
    group = settings.topic_prefix + "metrics"
    stack.close()
    engine = make_engine(settings.resolved_database_url("metrics"))
    before = snapshot(engine, group)

    def boom(report: Any) -> None:
        raise RuntimeError("disk full")

    try:
        asyncio.run(rebuild(settings, progress=boom))
    except RuntimeError:
        pass
    else:
        raise AssertionError("the rebuild should have failed")
    assert snapshot(engine, group) == before
    engine.dispose()
