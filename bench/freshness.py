"""Bench 3: freshness in three-process mode on real Kafka and PostgreSQL: the time from
intake's 2xx to the KPI reflecting the event, under a steady offered load, against the same
probe on an idle system (the baseline). Also peak RSS of each service.

A probe posts a case at a counter the load never uses, notes when the 2xx arrived, then polls
`GET /v1/kpis?scope=agency:…` on metrics every 5 ms until the count moves.
Run: .venv/bin/python -m bench.freshness [--rate 300 --seconds 30]
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import psycopg

from bench.common import ROOT, auth_env, bearer, free_port, peak_rss_mb, quantiles, save, server
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


async def offer_load(intake: str, rate: float, seconds: float, sent: list[int],
                     answered: list[float]) -> None:
    """Offer `rate` new cases a second; `answered` gets each 2xx's time since the start, so
    the rate intake kept up with can be told from the rate offered."""
    bodies = [orjson.loads(b) for b in realistic_bodies(province=LOAD_PROVINCE)]
    async with httpx.AsyncClient(base_url=intake, timeout=30, headers=bearer("counter"),
                                 limits=httpx.Limits(max_connections=32)) as client:
        started = time.monotonic()
        pending: set[asyncio.Task[Any]] = set()
        i = 0

        async def post(body: dict[str, Any]) -> None:
            r = await client.post("/v1/cases", json=body)
            if r.is_success:
                answered.append(time.monotonic() - started)

        while time.monotonic() - started < seconds:
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(post(bodies[i % len(bodies)]))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        await asyncio.gather(*pending, return_exceptions=True)
        sent.append(i)


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
    ports = {s: free_port() for s in SERVICES}
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

        answered: list[float] = []

        async def loaded() -> tuple[list[float], int]:
            sent: list[int] = []
            lat, _ = await asyncio.gather(
                probe(url["intake"], url["metrics"], seconds),
                offer_load(url["intake"], rate, seconds, sent, answered))
            return lat, sent[0]

        busy, sent = asyncio.run(loaded())
        rss = {s: peak_rss_mb(p.pid) for s, p in procs.items()}
    q_idle, q_busy = quantiles(idle), quantiles(busy)
    return {"offered_cases_per_s": rate, "offered_events_per_s_approx": rate * 2,
            "seconds": seconds, "cases_sent": sent,
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
          f" events/s incl. routing), sent {r['cases_sent']}, answered "
          f"{r['cases_answered_per_s']:.0f}/s; ratio p50 loaded/idle "
          f"{r['ratio_p50_loaded_vs_idle']:.2f}; peak RSS {r['peak_rss_mb']}")
    save(args.name, r)


if __name__ == "__main__":
    main()
