"""`motcua simulate` (drive a running instance with realistic traffic) and `motcua kpis`."""

import argparse
import asyncio
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from motcua.commands.clients import add_credential_options, auth_for
from motcua.console import Progress, table
from motcua.loadgen import LoadGenerator, Request
from registry.catalogue import Catalogue
from services.clock import LOCAL_TZ


def register(sub: Any) -> None:
    sim = sub.add_parser("simulate", help="post realistic counter traffic to a running motcua")
    sim.add_argument("--plan", required=True, metavar="PROVINCE",
                     help="province code whose counters and procedures to use, e.g. H56")
    sim.add_argument("--days", type=int, default=5, help="working days of traffic (ending now)")
    sim.add_argument("--rate", type=float, default=50.0, help="requests per second to send")
    sim.add_argument("--cases-per-day", type=int, default=200)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--url", default="http://127.0.0.1:8000", help="intake (or `motcua up`)")
    sim.add_argument("--metrics-url", default=None, help="metrics, if not the same as --url")
    sim.add_argument("--concurrency", type=int, default=16)
    add_credential_options(sim, default_kind="counter")
    sim.set_defaults(func=cmd_simulate)
    kp = sub.add_parser("kpis", help="print a KPI table from a running motcua")
    kp.add_argument("--url", default="http://127.0.0.1:8000", help="metrics (or `motcua up`)")
    kp.add_argument("--scope", default="all")
    kp.add_argument("--period", default=None, help="2026, 2026-Q1, 2026-03 or 2026-03-02")
    kp.add_argument("--kpi", action="append", default=None)
    add_credential_options(kp, default_kind="portal")
    kp.set_defaults(func=cmd_kpis)


def cmd_kpis(args: argparse.Namespace) -> None:
    params: dict[str, Any] = {"scope": args.scope}
    if args.period:
        params["period"] = args.period
    if args.kpi:
        params["kpi"] = args.kpi
    r = httpx.get(f"{args.url.rstrip('/')}/v1/kpis", params=params, timeout=30,
                  auth=auth_for(args, args.as_kind))
    if r.status_code != 200:
        sys.exit(f"error {r.status_code}: {r.text}")
    print(kpi_table(r.json()))


def kpi_table(answer: dict[str, Any]) -> str:
    rows = [[i["kpi"], i["numerator"], i["denominator"], i["value"], i.get("target"),
             i.get("gap"), i.get("status")] for i in answer["items"]]
    title = f"KPIs — scope {answer['scope']}, period {answer['period']}"
    return title + "\n" + table(
        ["kpi", "numerator", "denominator", "value", "target", "gap", "status"], rows)


def cmd_simulate(args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    start = (now - timedelta(days=args.days * 7 / 5 + 1)).astimezone(LOCAL_TZ).date()
    gen = LoadGenerator(Catalogue.load(), province=args.plan, seed=args.seed)
    # Only what has happened by now: a simulated future event would be refused.
    requests = list(gen.requests(start=start, days=args.days,
                                 cases_per_day=args.cases_per_day, not_after=now))
    outcome = asyncio.run(send_all(requests, url=args.url, rate=args.rate,
                                   concurrency=args.concurrency,
                                   auth=auth_for(args, args.as_kind)))
    print(table(["outcome", "requests"], sorted(outcome.items())))
    metrics_url = (args.metrics_url or args.url).rstrip("/")
    months = sorted({r.at.astimezone(LOCAL_TZ).strftime("%Y-%m") for r in requests})
    # KPIs are a portal's to read: the credentials file's portal, or the credentials given.
    kpi_auth = auth_for(args, "portal") if credentials_file_only(args) else auth_for(
        args, args.as_kind)
    _settle(metrics_url, args.plan, months, kpi_auth)
    for month in months:
        r = httpx.get(f"{metrics_url}/v1/kpis",
                      params={"scope": f"province:{args.plan}", "period": month}, timeout=30,
                      auth=kpi_auth)
        if r.status_code == 200:
            print()
            print(kpi_table(r.json()))


def _settle(url: str, province: str, months: list[str], auth: Any, timeout: float = 60) -> None:
    """Wait until the projection has caught up: the receipts count stops moving."""
    def received() -> list[int]:
        out = []
        for month in months:
            r = httpx.get(f"{url}/v1/kpis", params={"scope": f"province:{province}",
                          "period": month, "kpi": "received"}, timeout=30, auth=auth)
            out.append(r.json()["items"][0]["numerator"] if r.status_code == 200 else -1)
        return out

    deadline = time.monotonic() + timeout
    last, steady = received(), 0
    while steady < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        now = received()
        steady = steady + 1 if now == last else 0
        last = now


def credentials_file_only(args: argparse.Namespace) -> bool:
    return not args.token and not (args.client_id and args.client_secret)


async def send_all(requests: list[Request], *, url: str, rate: float,
                   concurrency: int, auth: httpx.Auth | None = None) -> Counter[str]:
    """Send in time order at `rate`/s; one case's requests go in order through one worker."""
    outcome: Counter[str] = Counter()
    codes: dict[str, str] = {}
    queues: list[asyncio.Queue[Request | None]] = [asyncio.Queue() for _ in range(concurrency)]
    progress = Progress(len(requests), "simulate")
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits,
                                 auth=auth) as client:

        async def worker(q: asyncio.Queue[Request | None]) -> None:
            while (req := await q.get()) is not None:
                code = codes.get(req.case_key)
                if "{case}" in req.path and code is None:
                    outcome["skipped (case not received)"] += 1
                else:
                    path = req.path.replace("{case}", code or "")
                    try:
                        r = await client.post(path, json=req.body)
                        outcome[f"{r.status_code}"] += 1
                        if req.path == "/v1/cases" and r.status_code in (200, 201):
                            codes[req.case_key] = r.json()["case_code"]
                    except httpx.HTTPError as exc:
                        outcome[type(exc).__name__] += 1
                progress.advance(extra=f"ok {outcome['201'] + outcome['200']}")

        workers = [asyncio.create_task(worker(q)) for q in queues]
        interval = 1.0 / rate if rate > 0 else 0.0
        started = asyncio.get_running_loop().time()
        for i, req in enumerate(requests):
            delay = started + i * interval - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
            await queues[hash(req.case_key) % concurrency].put(req)
        for q in queues:
            await q.put(None)
        await asyncio.gather(*workers)
    progress.close()
    return outcome
