"""Bench 3: freshness in three-process mode on real Kafka and PostgreSQL: the time from
intake's 2xx to the KPI reflecting the event, under a steady offered load, against the same
probe on an idle system (the baseline). Also peak RSS of each service.

A probe posts a case at a counter the load never uses, notes when the 2xx arrived, then polls
`GET /v1/kpis?scope=agency:…` on metrics every 5 ms until the count moves.
Run: .venv/bin/python -m bench.freshness [--rate 300 --seconds 30]
"""

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from bench.common import ROOT, auth_env, bearer, free_ports, peak_rss_mb, quantiles, save, server
from bench.intake_http import realistic_bodies
from bench.projection import KAFKA, PG

LOAD_PROVINCE = "H56"  # the load: motcua.loadgen's counters of this province
PROBE_AGENCY = "000.00.20.H35"
SERVICES = ("intake", "routing", "metrics")


def database() -> str:
    name = f"motcua_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG.rsplit("/", 1)[0] + "/" + name


class RawClient:
    """Keep-alive HTTP/1.1 connections sending pre-built requests, reading only the status line
    and Content-Length: the load must not be limited by its own client (httpx spends more CPU
    on a request than intake does)."""

    def __init__(self, base: str, connections: int, headers: dict[str, str]) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port, self.connections = host, int(port), connections
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue())

    async def start(self) -> None:
        for _ in range(self.connections):
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))

    def request(self, path: str, body: bytes) -> bytes:
        return (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body

    async def send(self, request: bytes) -> int:
        reader, writer = await self.idle.get()
        try:
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            return status
        finally:
            self.idle.put_nowait((reader, writer))

    async def close(self) -> None:
        while not self.idle.empty():
            _reader, writer = self.idle.get_nowait()
            writer.close()


async def offer_load(intake: str, rate: float, seconds: float,
                     ready: Callable[[], None]) -> tuple[int, list[float], dict[int, int]]:
    """Offer `rate` new cases a second; (sent, each 2xx's time since the start, answers by
    status), so the rate intake kept up with can be told from the rate offered."""
    client = RawClient(intake, 64, bearer("counter"))
    await client.start()
    requests = [client.request("/v1/cases", b.encode())
                for b in realistic_bodies(province=LOAD_PROVINCE)]
    ready()
    answered: list[float] = []
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    pending: set[asyncio.Task[Any]] = set()
    i = 0

    async def post(request: bytes) -> None:
        status = await client.send(request)
        statuses[status] += 1
        if 200 <= status < 300:
            answered.append(time.monotonic() - started)

    while time.monotonic() - started < seconds:
        due = started + i / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        task = asyncio.create_task(post(requests[i % len(requests)]))
        pending.add(task)
        task.add_done_callback(pending.discard)
        i += 1
    await asyncio.gather(*pending, return_exceptions=True)
    await client.close()
    return i, answered, dict(statuses)


def _load_process(intake: str, rate: float, seconds: float, out: Any) -> None:
    out.put(asyncio.run(offer_load(intake, rate, seconds, lambda: out.put("offering"))))


async def probe(intake: str, metrics: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    today = datetime.now(UTC).astimezone().strftime("%Y")
    params = {"scope": f"agency:{PROBE_AGENCY}", "kpi": "received", "period": today}
    counter, portal = bearer("counter"), bearer("portal")
    async with httpx.AsyncClient(timeout=30) as client:
        async def count() -> int:
            r = await client.get(f"{metrics}/v1/kpis", params=params, headers=portal)
            r.raise_for_status()
            return int(r.json()["items"][0]["numerator"])

        seen = await count()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            r = await client.post(f"{intake}/v1/cases", headers=counter, json={
                "agency_code": PROBE_AGENCY, "procedure_code": "2.000488", "channel": "counter"})
            acked = time.perf_counter()
            assert r.status_code == 201, r.text
            seen += 1
            while await count() < seen:
                await asyncio.sleep(0.005)
            latencies.append((time.perf_counter() - acked) * 1000)
            await asyncio.sleep(0.1)
    return latencies


def run(rate: float, seconds: float) -> dict[str, Any]:
    py = str(ROOT / ".venv" / "bin" / "python")
    prefix = f"fresh{uuid.uuid4().hex[:6]}."
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": KAFKA, "MOTCUA_TOPIC_PREFIX": prefix,
                "MOTCUA_LOG_LEVEL": "WARNING", "MOTCUA_CONSUMER_POLL_MS": "50",
                # One data dir: the three share the development secrets kept there.
                "MOTCUA_DATA_DIR": tempfile.mkdtemp(prefix="motcua-fresh-"), **auth_env(),
                **{f"{s.upper()}_DATABASE_URL": database() for s in SERVICES}})
    url = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
    with ExitStack() as stack:
        procs = {s: stack.enter_context(server(
            [py, "-m", "motcua.cli", s, "--port", str(ports[s])], f"{url[s]}/readyz", env=env))
            for s in SERVICES}
        idle = asyncio.run(probe(url["intake"], url["metrics"], min(10.0, seconds)))

        # The load from a process of its own: its CPU must not delay the probe's timings.
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        load = spawn.Process(target=_load_process, args=(url["intake"], rate, seconds, results))
        load.start()
        assert results.get(timeout=120) == "offering"
        busy = asyncio.run(probe(url["intake"], url["metrics"], seconds))
        sent, answered, statuses = results.get()
        load.join()
        rss = {s: peak_rss_mb(p.pid) for s, p in procs.items()}
    q_idle, q_busy = quantiles(idle), quantiles(busy)
    return {"offered_cases_per_s": rate, "offered_events_per_s_approx": rate * 2,
            "seconds": seconds, "cases_sent": sent, "answers_by_status": statuses,
            # 2xx answers within the offered window, a second: what intake kept up with.
            "cases_answered_per_s": sum(1 for t in answered if t <= seconds) / seconds,
            "idle_ms": q_idle, "loaded_ms": q_busy,
            "probes": len(busy), "ratio_p50_loaded_vs_idle": q_busy["p50"] / q_idle["p50"],
            "peak_rss_mb": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=300.0, help="cases/s offered")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--name", default="freshness", help="bench/results/<name>.json")
    args = parser.parse_args()
    r = run(args.rate, args.seconds)
    for k in ("idle_ms", "loaded_ms"):
        q = r[k]
        print(f"{k:10} p50 {q['p50']:.1f} ms  p99 {q['p99']:.1f} ms  max {q['max']:.1f} ms",
              file=sys.stdout)
    print(f"offered {r['offered_cases_per_s']:.0f} cases/s (~{r['offered_events_per_s_approx']:.0f}"
          f" events/s incl. routing), sent {r['cases_sent']} (answers {r['answers_by_status']}),"
          " answered "
          f"{r['cases_answered_per_s']:.0f}/s; ratio p50 loaded/idle "
          f"{r['ratio_p50_loaded_vs_idle']:.2f}; peak RSS {r['peak_rss_mb']}")
    save(args.name, r)


if __name__ == "__main__":
    main()
