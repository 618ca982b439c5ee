"""`motcua deadletters list|replay` beside a running embedded `motcua` (a second writer on its
log): dead letters listed with their reason, replayed once per original record, replayed again
with no further effect."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from contracts import CASES_TOPIC, DEAD_LETTER_TOPIC, CaseReceived, encode, new_envelope
from contracts.deadletter import REASON_HEADER
from contracts.types import Channel
from services.bus import Record
from services.bus.embedded import EmbeddedBus
from tests.faults.conftest import REPO
from tests.harness import Stack

AGENCY, PROVINCE, PROCEDURE, FIELD = "000.00.20.H56", "H56", "1.001193", "G01"


def receipt(code: str, at: datetime) -> tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]:
    env = new_envelope(CaseReceived(
        case_code=code, occurred_at=at, status=2, agency_code=AGENCY, province_code=PROVINCE,
        procedure_code=PROCEDURE, field_code=FIELD, channel=Channel.COUNTER, online_level=None,
        return_by_post=False, processing_days=1, fee_vnd=0, due_date=at.date(),
    ), source="/motcua/intake")
    key, value, headers = encode(env)
    return key, value, tuple(headers)


def run(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    settings = stack.settings["intake"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "MOTCUA_EMBEDDED_BUS_URL")}
    env.update(MOTCUA_DATA_DIR=str(settings.data_dir), MOTCUA_TOPIC_PREFIX=settings.topic_prefix)
    done = subprocess.run([sys.executable, "-m", "motcua.cli", "deadletters", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


def received_count(stack: Stack, period: str) -> Any:
    r = stack.client.get("/v1/kpis", params={"scope": f"province:{PROVINCE}",
                                              "period": period, "kpi": ["received"]})
    assert r.status_code == 200, r.text
    return r.json()["items"][0]["numerator"]


def test_list_and_replay_dead_letters_on_the_embedded_bus(embedded_stack: Stack) -> None:
    stack = embedded_stack
    prefix = stack.settings["intake"].topic_prefix
    cases, dlq = prefix + CASES_TOPIC, prefix + DEAD_LETTER_TOPIC
    at = datetime.now(UTC) - timedelta(days=2)
    period = f"{at.astimezone(UTC) + timedelta(hours=7):%Y-%m}"
    code = f"{AGENCY}-{at:%y%m%d}-990001"
    key, value, headers = receipt(code, at)
    # As an earlier build with a bug would have left it: a good event on the dead-letter topic.
    reason = orjson.dumps({"code": "undecodable", "reason": "bug in an earlier build",
                           "group_id": prefix + "metrics", "topic": cases, "partition": 0,
                           "offset": 0})

    async def inject() -> None:
        bus = EmbeddedBus(stack.settings["intake"].sqlite_url("bus"))
        await bus.start()
        try:
            await bus.publish([Record(cases, b"x", b"not json"),
                               Record(dlq, key, value, (*headers, (REASON_HEADER, reason)))])
        finally:
            await bus.close()

    asyncio.run(inject())
    stack.settled()
    assert received_count(stack, period) == 0

    listed = run(stack, "list", "--json")
    rows = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert sorted((r["code"], r["group"]) for r in rows) == [
        ("undecodable", prefix + "metrics"), ("undecodable", prefix + "metrics"),
        ("undecodable", prefix + "routing")]
    assert {r["event_id"] for r in rows} >= {orjson.loads(value)["id"]}
    assert "3 dead letters (3 undecodable)" in listed.stderr

    metrics = stack.component("metrics").consumer.stats
    first = run(stack, "replay")
    assert "replayed 1;" in first.stderr
    assert "skipped 1 second dead letters of the same record" in first.stderr
    assert "kept 1 this build still cannot decode" in first.stderr
    # The running process notices another writer's records within about a second.
    wait_until(lambda: metrics.applied == 1)
    assert received_count(stack, period) == 1

    # Nothing new since: nothing to do; from the beginning: republished, and skipped by event id.
    assert "replayed 0;" in run(stack, "replay").stderr
    assert "replayed 1;" in run(stack, "replay", "--from-beginning").stderr
    wait_until(lambda: metrics.duplicates == 1)
    stack.settled()
    assert received_count(stack, period) == 1
    assert metrics.applied == 1


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
