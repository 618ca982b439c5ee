"""What the dashboard tests share: a small province-shaped data set posted through the API,
overdue notices standing in for routing's scan, and the one-process app on a real port."""

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from contracts import CASES_TOPIC, CaseOverdue, encode, new_envelope
from motcua.embedded import create_embedded_app, settings_for
from services.bus.base import Record
from services.clock import LOCAL_TZ
from tests.factories import CENTRE, FREE_PROCEDURE, case_body, event_body
from tests.harness import (
    RoleAuth,
    answers_as,
    auth_settings,
    server_thread,
    wait_ready,
    wait_settled,
)

# Two Thanh Hóa agencies (the service centre and the Justice Department) and one in Bắc Ninh,
# so the page has two provinces to choose from and two agencies inside Thanh Hóa.
JUSTICE = "000.00.02.H56"
BAC_NINH = "000.00.02.H05"
THREE_DAY_PROCEDURE = "1.004873"  # marital-status certificate: 3 working days, online offered


@dataclass
class Posted:
    by_agency: dict[str, list[str]] = field(default_factory=dict)
    late: list[str] = field(default_factory=list)  # received weeks ago, still open

    def add(self, agency: str, code: str) -> None:
        self.by_agency.setdefault(agency, []).append(code)


def receive(client: Any, at: datetime, **overrides: Any) -> str:
    r = client.post("/v1/cases", json=case_body(received_at=at.isoformat(), **overrides))
    assert r.status_code == 201, r.text
    return str(r.json()["case_code"])


def record(client: Any, code: str, type_: str, at: datetime, **fields: Any) -> None:
    body = event_body(type_, **fields) | {"occurred_at": at.isoformat()}
    r = client.post(f"/v1/cases/{code}/events", json=body)
    assert r.status_code == 201, r.text


def post_province_cases(client: Any, settled: Callable[[], None], now: datetime) -> Posted:
    """Cases this month in three agencies of two provinces, some resolved, plus two cases
    received six weeks ago and never resolved (the overdue backlog)."""
    posted = Posted()
    local = now.astimezone(LOCAL_TZ)
    # Received and resolved on the same local day, whatever the hour the tests run: the free
    # procedure is due the day it is received, so a receipt at 23:50 resolved at 00:10 is late.
    today_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    recent = max(local - timedelta(minutes=30), today_start)
    plan = [
        (CENTRE, {"channel": "counter"}),
        (CENTRE, {"channel": "counter"}),
        (CENTRE, {"channel": "online", "online_level": "full"}),
        (CENTRE, {"channel": "online", "online_level": "full"}),
        (CENTRE, {"channel": "postal", "procedure_code": THREE_DAY_PROCEDURE}),
        (JUSTICE, {"channel": "counter"}),
        (JUSTICE, {"channel": "online", "online_level": "partial"}),
        (BAC_NINH, {"channel": "counter"}),
    ]
    for agency, extra in plan:
        body = {"agency_code": agency, "procedure_code": FREE_PROCEDURE} | extra
        posted.add(agency, receive(client, recent, **body))
    weeks_ago = (local - timedelta(days=42)).replace(hour=9, minute=0, second=0, microsecond=0)
    for _ in range(2):
        code = receive(client, weeks_ago, agency_code=CENTRE,
                       procedure_code=THREE_DAY_PROCEDURE)
        posted.add(CENTRE, code)
        posted.late.append(code)
    settled()  # routing moves the cases into processing first, as it would in real time
    resolved_at = max(local - timedelta(minutes=5), recent)
    centre = posted.by_agency[CENTRE]
    record(client, centre[0], "resolved", resolved_at, result_digitised=True)
    record(client, centre[2], "resolved", resolved_at, result_digitised=False)
    record(client, posted.by_agency[JUSTICE][0], "resolved", resolved_at, result_digitised=True)
    record(client, centre[0], "rated", resolved_at, rating="very_satisfied")
    settled()
    return posted


def overdue_records(client: Any, codes: list[str], topic_prefix: str) -> list[Record]:
    """The overdue facts intake records on the case log when a case passes its due date, for
    each of `codes` (open, due before today as intake holds it). Written straight to the case
    log so these tests depend on metrics' projection alone, not on who raises the notice."""
    today = datetime.now(UTC).astimezone(LOCAL_TZ).date()
    records = []
    for code in codes:
        case = client.get(f"/v1/cases/{code}").json()
        due = date.fromisoformat(case["due_date"])
        assert case["status"] in (2, 4, 6) and due < today, case
        payload = CaseOverdue(case_code=code, occurred_at=datetime.now(UTC) - timedelta(
            seconds=1), due_date=due, status=case["status"])
        key, value, headers = encode(new_envelope(payload, source="/motcua/intake"))
        records.append(Record(topic=topic_prefix + CASES_TOPIC, key=key, value=value,
                              headers=tuple(headers)))
    return records


# ---- what the page shows, written out from the API's numbers -----------------------------

def _fixed(x: float, decimals: int) -> str:
    # JavaScript's toFixed rounds the exact binary value half away from zero.
    q = Decimal(1).scaleb(-decimals)
    return str(Decimal(abs(x)).quantize(q, rounding=ROUND_HALF_UP))


def shown_number(x: float, decimals: int, lang: str) -> str:
    whole, _, frac = _fixed(x, decimals).partition(".")
    thousands, point = (".", ",") if lang == "vi" else (",", ".")
    grouped = f"{int(whole):,}".replace(",", thousands)
    return grouped + (point + frac if frac else "")


def shown_value(item: dict[str, Any], lang: str) -> str:
    v = item["value"]
    if v is None:
        return "—"
    if item["unit"] == "ratio":
        return shown_number(v * 100, 1, lang) + "%"
    if item["unit"] == "days":
        return shown_number(v, 1, lang) + (" ngày" if lang == "vi" else " days")
    return shown_number(v, 0, lang)


def shown_fraction(item: dict[str, Any], lang: str) -> str:
    if item["denominator"] is None:
        return ""
    num = shown_number(item["numerator"], 0, lang)
    den = shown_number(item["denominator"], 0, lang)
    if item["unit"] == "days":
        return f"{num} ngày / {den} hồ sơ" if lang == "vi" else f"{num} days / {den} cases"
    return f"{num} / {den}"


def shown_gap(item: dict[str, Any], lang: str) -> str:
    g = item.get("gap")
    if g is None:
        return "—"
    sign = "+" if g > 0 else "−" if g < 0 else "±"
    if item["unit"] == "ratio":
        pp = "điểm %" if lang == "vi" else "pp"
        return f"{sign}{shown_number(abs(g) * 100, 1, lang)} {pp}"
    if item["unit"] == "days":
        days = "ngày" if lang == "vi" else "days"
        return f"{sign}{shown_number(abs(g), 1, lang)} {days}"
    return sign + shown_number(abs(g), 0, lang)


# ---- the one-process app on a real port ---------------------------------------------------

@dataclass
class LiveServer:
    app: FastAPI
    url: str
    loop: asyncio.AbstractEventLoop
    client: httpx.Client
    topic_prefix: str
    token: str = ""  # a national portal's, for the page (#token=…)

    def component(self, name: str) -> Any:
        return self.app.state.components[name]

    def settled(self, timeout: float = 120.0) -> None:
        def lag() -> int:
            return sum(
                sum(self.component(n).consumer.stats.lag.values())
                + (0 if self.component(n).consumer.stats.running else 1)
                for n in ("intake", "routing", "metrics")
            )

        wait_settled(lambda: self.client.get("/readyz").json(), timeout, lag)

    def publish(self, records: list[Record]) -> None:
        asyncio.run_coroutine_threadsafe(self.app.state.bus.publish(records),
                                         self.loop).result(30)


@contextmanager
def live_server(data_dir: Path, topic_prefix: str) -> Iterator[LiveServer]:
    """`motcua up` in a thread: uvicorn on a free port, embedded bus, SQLite. In-process (not a
    subprocess) so the test can stand in for routing's overdue scan on the same bus."""
    data_dir.mkdir(parents=True, exist_ok=True)
    auth = auth_settings()
    settings = settings_for(data_dir, **auth, topic_prefix=topic_prefix, consumer_poll_ms=50,
                            kafka_bootstrap_servers=None, database_url=None)
    app = create_embedded_app(**settings)
    role_auth = RoleAuth(auth["auth_signing_key"])
    with server_thread(app, "dashboard-test-server", lifespan="on") as (port, loop):
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30, auth=role_auth) as client:
            wait_ready(lambda: httpx.Response(200 if answers_as(client, "metrics") else 503),
                       timeout=60)
            yield LiveServer(app=app, url=url, loop=loop, client=client,
                             topic_prefix=topic_prefix, token=role_auth.tokens["portal"])

