"""Fault injection on the real broker and PostgreSQL (the suite's own instances): whatever fails
in between, every event a counter got a 2xx for is in the KPIs exactly once, and nothing was
answered 2xx that is missing. Each scenario prints its figures (sent, accepted, lost,
duplicated) in pytest's summary and writes them to test-artifacts/faults.json."""

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as KafkaTP
from sqlalchemy import create_engine, text

from contracts import CASES_TOPIC, CaseReceived, encode, new_envelope
from contracts.types import Channel, OnlineLevel
from registry.catalogue import Catalogue
from services.bus import Record
from services.bus.kafka import KafkaBus
from tests.faults.conftest import FAILED, LOGS, REPO, Infra
from tests.faults.system import Load, System, check_exactly_once, plan

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
def system(
    request: pytest.FixtureRequest, infra: Infra, tmp_path: Path, topic_prefix: str
) -> Iterator[System]:
    s = System(infra, tmp_path, topic_prefix)
    try:
        yield s
    finally:
        s.close()
        if request.node.stash.get(FAILED, False):
            # pytest's temporary directories are pruned by any later run: keep the logs.
            kept = LOGS / request.node.name
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(tmp_path, kept, ignore=shutil.ignore_patterns("*.db*"))


def test_broker_killed_under_load(system: System, infra: Infra, report: Any) -> None:
    system.start("intake", "routing", "metrics")
    load = Load(plan(60, seed=501), [system.client("intake")], pace_s=0.01).start()
    load.wait_progress(0.3)
    infra.kafka_kill()
    accepted_at_kill = len(load.accepted)
    time.sleep(3)
    accepted_while_down = len(load.accepted) - accepted_at_kill
    backlog_while_down = system.metric("intake", "motcua_outbox_backlog_events")
    infra.kafka_start()
    load.join()
    system.settle(180)
    outcome = check_exactly_once(system, load)
    report("broker_kill9_under_load", outcome.row(
        accepted_while_broker_down=accepted_while_down,
        outbox_backlog_while_down=int(backlog_while_down)))
    # Counters were answered while the broker was down: the outbox held their events.
    assert accepted_while_down > 0
    assert backlog_while_down > 0


def test_consumers_killed_mid_batch_and_terminated(system: System, report: Any) -> None:
    system.start("intake", "routing", "metrics")
    load = Load(plan(80, seed=502), [system.client("intake")], pace_s=0.01).start()
    load.wait_progress(0.25)
    system.kill("metrics")
    system.kill("routing")
    load.wait_progress(0.45)
    system.start("metrics", "routing")
    load.wait_progress(0.7)
    # SIGTERM while consuming: the batch in flight finishes (or rolls back), then it exits.
    log = system.terminate("metrics")
    assert "Application shutdown complete" in log
    system.start("metrics")
    load.join()
    system.settle(180)
    outcome = check_exactly_once(system, load)
    report("routing_metrics_kill9_and_sigterm", outcome.row(
        redelivered_and_skipped=int(system.metric("metrics", "motcua_consumer_duplicates_total")
                                    + system.metric("routing",
                                                    "motcua_consumer_duplicates_total"))))


def test_postgres_restarted_under_load(system: System, infra: Infra, report: Any) -> None:
    system.start("intake", "routing", "metrics")
    load = Load(plan(60, seed=503), [system.client("intake")], pace_s=0.01).start()
    load.wait_progress(0.3)
    infra.postgres_restart()
    load.join()
    system.settle(180)
    outcome = check_exactly_once(system, load)
    report("postgres_restart_under_load", outcome.row(
        retried_requests=load.attempts - load.sent, unanswered=len(load.unanswered)))


async def _rewind_group(bootstrap: str, group: str, topic: str) -> None:
    """What `kafka-consumer-groups --reset-offsets --to-earliest` does, for a stopped group."""
    bus = KafkaBus(bootstrap)
    await bus.start()
    try:
        tps = [KafkaTP(tp.topic, tp.partition) for tp in await bus.end_offsets([topic])]
    finally:
        await bus.close()
    assert tps
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.commit({tp: OffsetAndMetadata(0, "") for tp in tps})
        assert {await consumer.committed(tp) for tp in tps} == {0}
    finally:
        await consumer.stop()


async def _log_size(bootstrap: str, topic: str) -> int:
    bus = KafkaBus(bootstrap)
    await bus.start()
    try:
        return sum((await bus.end_offsets([topic])).values())
    finally:
        await bus.close()


def test_forced_redelivery_of_the_whole_log_is_a_no_op(
    system: System, infra: Infra, report: Any
) -> None:
    system.start("intake", "routing", "metrics")
    load = Load(plan(50, seed=504), [system.client("intake")]).start()
    load.join()
    system.settle()
    before = check_exactly_once(system, load)
    system.terminate("routing")
    system.terminate("metrics")
    # Our consumers resume from the positions stored with their state, so a Kafka offset
    # reset alone changes nothing: rewind both, the group's offsets and the stored positions
    # (routing's set back to 0, metrics' deleted: a consumer that never saw a partition reads
    # it from the start).
    topic = system.prefix + CASES_TOPIC
    for group in ("routing", "metrics"):
        asyncio.run(_rewind_group(infra.kafka, system.prefix + group, topic))
    with_engine(system.databases["routing"], "UPDATE routing_positions SET next_offset = 0")
    with_engine(system.databases["metrics"], "DELETE FROM metrics_positions")
    log_size = asyncio.run(_log_size(infra.kafka, topic))
    system.start("routing", "metrics")
    system.settle()
    skipped = {g: system.metric(g, "motcua_consumer_duplicates_total")
               for g in ("routing", "metrics")}
    applied = {g: system.metric(g, "motcua_consumer_events_applied_total")
               for g in ("routing", "metrics")}
    grown = asyncio.run(_log_size(infra.kafka, topic)) - log_size
    after = check_exactly_once(system, load)
    report("forced_redelivery", after.row(redelivered=log_size,
                                          skipped_as_processed=int(skipped["metrics"]),
                                          new_since_rewind=grown))
    # The whole log came again (a rebalance may deliver part of it once more) and every event
    # was recognised as processed; only what the services wrote since (routing's deadline
    # watch, say) was applied.
    assert min(skipped.values()) >= log_size > 0
    assert max(applied.values()) <= grown
    assert before.kpis_checked == after.kpis_checked


def with_engine(url: str, sql: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text(sql)).rowcount > 0
    finally:
        engine.dispose()


def test_every_request_twice_at_once_to_two_intakes(system: System, report: Any) -> None:
    system.start("intake", "intake2", "routing", "metrics")
    load = Load(plan(40, seed=505), [system.client("intake"), system.client("intake2")],
                twice=True).start()
    load.join()
    system.settle(180)
    outcome = check_exactly_once(system, load)
    created = sum(1 for pair in load.double_answers if pair == (201, 201))
    receipts = load.double_answers[:len(load.cases)]
    refused = sum(1 for pair in load.double_answers if sorted(pair) != [200, 201])
    report("twice_to_two_intakes", outcome.row(requests_posted=load.attempts,
                                               created_twice=created,
                                               copy_answered_409=refused))
    assert len(load.double_answers) == load.sent
    assert created == 0
    # Every copy of a receipt got a 2xx with the same slip: one created, one replayed.
    assert [p for p in receipts if sorted(p) != [200, 201]] == []
    assert load.different_bodies == []


def test_both_copies_of_a_concurrent_event_get_a_2xx(system: System) -> None:
    system.start("intake", "intake2")
    cases = plan(12, seed=507)
    load = Load(cases, [system.client("intake"), system.client("intake2")], twice=True).start()
    load.join()
    events = load.double_answers[len(cases):]
    assert events
    assert [p for p in events if sorted(p) != [200, 201]] == []


def _future_receipt(version_ahead: int = 1) -> tuple[Record, dict[str, Any], str]:
    """A `received` event as an upgraded intake would write it (one version ahead), for a case
    only the log knows; returns the record, its fact for the reference, and its event id."""
    cat = Catalogue.load()
    agency = cat.agency("000.00.20.H56")
    procedure = cat.procedure("1.001193")
    assert agency is not None and procedure is not None
    at = datetime.now(UTC) - timedelta(days=1)
    code = f"{agency.code}-{at.astimezone(UTC):%y%m%d}-990001"
    payload = CaseReceived(
        case_code=code, occurred_at=at, status=2, agency_code=agency.code,
        province_code=agency.province, procedure_code=procedure.code,
        field_code=procedure.field_code, channel=Channel.ONLINE, online_level=OnlineLevel.FULL,
        return_by_post=False, processing_days=procedure.processing_days,
        fee_vnd=procedure.fee_vnd, due_date=at.date() + timedelta(days=5),
    )
    env = new_envelope(payload, source="/motcua/intake")
    key, value, headers = encode(env)
    raw = orjson.loads(value)
    raw["dataversion"] += version_ahead
    fact = {"case_code": code, "agency_code": agency.code, "province": agency.province,
            "field_code": procedure.field_code, "procedure_code": procedure.code,
            "channel": "online", "online_level": "full", "received_at": at, "events": []}
    return Record("", key, orjson.dumps(raw), tuple(headers)), fact, env.id


def _malformed() -> list[bytes]:
    valid = orjson.loads(_future_receipt(0)[0].value)
    bad_payload = {**valid, "id": "bad-payload", "data": {**valid["data"], "channel": "fax"}}
    unknown_type = {**valid, "id": "unknown-type", "type": "vn.motcua.case.teleported"}
    return [b"\xff not json", b"[1, 2, 3]", orjson.dumps(unknown_type), orjson.dumps(bad_payload)]


async def _publish(bootstrap: str, records: list[Record]) -> None:
    bus = KafkaBus(bootstrap)
    await bus.start()
    try:
        await bus.publish(records)
    finally:
        await bus.close()


def motcua(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    run = subprocess.run([sys.executable, "-m", "motcua.cli", *args], env=system.env, cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    return run


def test_malformed_and_future_version_events_fed_into_the_topic(
    system: System, infra: Infra, report: Any
) -> None:
    system.start("intake", "routing", "metrics")
    load = Load(plan(50, seed=506), [system.client("intake")], pace_s=0.01).start()
    load.wait_progress(0.3)
    topic = system.prefix + CASES_TOPIC
    future, future_fact, future_id = _future_receipt()
    poison = [Record(topic, b"000.00.20.H56-000000-0000", v) for v in _malformed()]
    asyncio.run(_publish(infra.kafka, [*poison, Record(topic, future.key, future.value,
                                                       future.headers)]))
    load.join()

    # Malformed: dead-lettered by both consumers, their partitions move on. The newer version:
    # its partition waits for the upgrade in both.
    def counted() -> bool:
        return all(
            system.metric(g, "motcua_consumer_dead_letters_total") == len(poison)
            and system.metric(g, "motcua_consumer_parked_partitions") == 1
            for g in ("routing", "metrics"))

    deadline = time.monotonic() + 60
    while not counted():
        assert time.monotonic() < deadline, "dead letters or parking not seen"
        time.sleep(0.3)

    listed = motcua(system, "deadletters", "list", "--json")
    rows = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == 2 * len(poison)
    assert {r["code"] for r in rows} == {"undecodable"}
    assert {r["group"] for r in rows} == {system.prefix + "routing", system.prefix + "metrics"}
    assert "dead letters (8 undecodable)" in listed.stderr
    # This build still cannot read them: replay keeps them instead of dead-lettering again.
    replayed = motcua(system, "deadletters", "replay")
    assert "replayed 0;" in replayed.stderr
    assert f"kept {len(poison)} this build still cannot decode" in replayed.stderr

    # The upgrade: routing and metrics restart as a build that knows `received` v2.
    system.terminate("routing")
    system.terminate("metrics")
    system.start("routing", "metrics",
                 launcher=[sys.executable, "-m", "tests.faults.upgraded", "received"])
    system.settle(180)
    for g in ("routing", "metrics"):
        assert system.metric(g, "motcua_consumer_parked_partitions") == 0
    outcome = check_exactly_once(system, load, extra_facts=[future_fact])
    report("malformed_and_future_version", outcome.row(
        fed_malformed=len(poison), dead_letters=len(rows), parked_then_applied=1))
    assert future_id not in load.accepted
