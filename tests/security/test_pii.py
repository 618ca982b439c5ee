"""Personal data never leaves intake, and is encrypted inside it (Decree 13/2023/NĐ-CP).

A scenario with distinctive applicants (id numbers, names, addresses, phones) runs on the
embedded bus and on Kafka; then every message on every topic, every log record, the /metrics
exposition, every KPI, breakdown and overdue answer, routing's and metrics' databases and the
raw bytes of intake's own database are searched for any of those values.
"""

import asyncio
import logging
import random
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from sqlalchemy import create_engine, select

from services.bus.embedded import bus_log
from tests import scenario
from tests.harness import Stack, StackFactory

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi"]
GIVEN = ["Thị Ngọc Diệp", "Văn Quyết", "Hữu Nghĩa", "Thu Trang", "Minh Khôi", "Gia Hưng"]


def applicants(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append({
            "kind": "citizen",
            # CCCD: province 038 (Thanh Hóa), then 9 digits; every fourth a 9-digit CMND.
            "id_number": f"038{rng.randrange(10**8, 10**9)}" if i % 4 else
                         f"17{rng.randrange(10**6, 10**7)}",
            "name": unicodedata.normalize(
                "NFC", f"{rng.choice(FAMILY)} {rng.choice(GIVEN)} Zxq{i:03d}"),
            "address": f"Số {100 + i} phố Lò Chum, phường Hạc Thành, Thanh Hóa, Zxq{i:03d}",
            "phone": f"09{rng.randrange(10**7, 10**8)}",
        })
    return out


def run(stack: Stack, people: list[dict[str, str]]) -> list[str]:
    cases = scenario.plan(len(people) - 5, seed=61, now=datetime.now(UTC))
    for pc, person in zip(cases, people, strict=False):
        pc.body["applicant"] = person
    scenario.post_receipts(stack.client, cases)
    stack.settled()
    scenario.post_later_events(stack.client, cases)
    codes = [str(pc.code) for pc in cases]
    for person in people[len(cases):]:  # online submissions carry applicants too
        r = stack.client.post("/v1/submissions", json={
            "agency_code": "000.00.20.H56", "procedure_code": "2.000488",
            "online_level": "full", "applicant": person})
        assert r.status_code == 201, r.text
        codes.append(r.json()["case_code"])
    stack.settled()
    return codes


def topic_bytes(stack: Stack, kafka: str | None, prefix: str) -> list[bytes]:
    if kafka is None:
        engine = create_engine(stack.settings["intake"].sqlite_url("bus"))
        with engine.connect() as conn:
            rows = list(conn.execute(select(bus_log)))
        engine.dispose()
        assert {r.topic for r in rows} >= {prefix + "motcua.cases.v1", prefix + "motcua.routing.v1"}
        return [b"".join([r.key or b"", r.value, r.headers]) for r in rows]
    return asyncio.run(_read_kafka(kafka, prefix))


async def _read_kafka(bootstrap: str, prefix: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        topics = [t for t in cluster.topics() if t.startswith(prefix)]
        assert prefix + "motcua.cases.v1" in topics
        tps = [TopicPartition(t, p) for t in topics
               for p in cluster.partitions_for_topic(t) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[bytes] = []
        while True:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= end for tp, end in ends.items()):
                break
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for r in records:
                    headers = b"".join(k.encode() + v for k, v in r.headers or ())
                    out.append(b"".join([r.key or b"", r.value or b"", headers]))
        return out
    finally:
        await consumer.stop()


def answers(stack: Stack, codes: list[str]) -> list[str]:
    """Everything a client can read except the case detail (which shows the applicant to the
    receiving agency's counter, on purpose)."""
    out = [stack.client.get("/metrics").text]
    for scope in ("all", "province:H56", "province:H05", "agency:000.00.20.H56"):
        for path in ("/v1/kpis", "/v1/kpis/index", "/v1/overdue"):
            r = stack.client.get(path, params={"scope": scope})
            assert r.status_code == 200, r.text
            out.append(r.text)
        out.append(stack.client.get("/v1/kpis", params={"scope": scope},
                                    headers={"accept": "text/csv"}).text)
    out.append(stack.client.get("/v1/breakdown").text)
    out += [stack.client.get(f"/v1/public/cases/{c}").text for c in codes]
    out += [stack.client.get(f"/v1/routing/cases/{c}").text for c in codes]
    out.append(stack.client.get("/v1/audit", params={"limit": 1000}).text)
    return out


def database_bytes(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(data_dir.glob("*.db*"))}


@pytest.mark.parametrize("bus", ["embedded", "kafka"])
def test_no_applicant_data_leaves_intake(
    stack_factory: StackFactory, request: pytest.FixtureRequest, topic_prefix: str, bus: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stack = stack_factory(bus, "sqlite")
    people = applicants(45, seed=6)
    codes = run(stack, people)
    kafka = request.getfixturevalue("kafka_bootstrap") if bus == "kafka" else None
    messages = topic_bytes(stack, kafka, topic_prefix)
    read = answers(stack, codes)
    logs = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    stack.close()  # the databases' files settle (WAL checkpointed) once the engines close
    files = database_bytes(stack.settings["intake"].data_dir)
    assert messages and logs and files
    assert any(b"motcua.cases" in m or b"case" in m for m in messages)
    secrets = [person[f] for person in people for f in ("id_number", "name", "address", "phone")]
    for value in secrets:
        needle = value.encode()
        assert not any(needle in m for m in messages), f"{value} on a topic"
        assert not any(value in line for line in logs), f"{value} in the logs"
        assert not any(value in text for text in read), f"{value} in an answer"
        for name, raw in files.items():
            assert needle not in raw, f"{value} in {name}"  # intake's too: encrypted at rest
    # And intake still knows them: the receiving counter reads its applicant back.
    detail = stack.restart().client.get(f"/v1/cases/{codes[0]}").json()
    assert detail["applicant"] == people[0]
