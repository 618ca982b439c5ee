"""Synthetic but realistic case events for projection benchmarks (no HTTP, no intake)."""

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from contracts import (
    EVENT_CLASSES,
    CaseReceived,
    Envelope,
    Paid,
    Resolved,
    Returned,
    Transferred,
    new_envelope,
)
from contracts.types import Channel, OnlineLevel, PaymentMethod, ReturnMethod, TransferMethod
from registry.catalogue import Catalogue

PAYLOADS = {cls.NAME: cls for cls in EVENT_CLASSES}


def case_events(n_cases: int, *, seed: int = 1, start: date = date(2025, 1, 1),
                days: int = 365) -> Iterator[Envelope]:
    """Five events per case: received, transferred, paid, resolved, returned."""
    rng = random.Random(seed)
    cat = Catalogue.load()
    agencies = sorted((a for a in cat.agencies.values() if a.reception), key=lambda a: a.code)
    procedures = sorted(cat.procedures.values(), key=lambda p: p.code)
    base = datetime.combine(start, datetime.min.time(), UTC)
    for i in range(n_cases):
        agency = agencies[rng.randrange(len(agencies))]
        proc = procedures[rng.randrange(len(procedures))]
        at = base + timedelta(seconds=rng.randrange(days * 86400))
        code = f"{agency.code}-{at:%y%m%d}-{i % 1_000_000:06d}"
        online = rng.random() < 0.5 and bool(proc.online_levels)
        yield new_envelope(CaseReceived(
            case_code=code, occurred_at=at, status=2, agency_code=agency.code,
            province_code=agency.province, district_code=None, procedure_code=proc.code,
            field_code=proc.field_code, channel=Channel.ONLINE if online else Channel.COUNTER,
            online_level=OnlineLevel.PARTIAL if online else None, return_by_post=False,
            processing_days=proc.processing_days, fee_vnd=proc.fee_vnd, due_date=at.date(),
        ), source="/bench", event_id=str(uuid.UUID(int=rng.getrandbits(128))), sequence=1,
        time=at)
        t = at + timedelta(hours=1)
        yield new_envelope(Transferred(
            case_code=code, occurred_at=t, status=4, from_office=agency.code,
            to_office=agency.parent or agency.code, method=TransferMethod.ELECTRONIC,
        ), source="/bench", event_id=str(uuid.UUID(int=rng.getrandbits(128))), sequence=2,
        time=t)
        t += timedelta(hours=2)
        yield new_envelope(Paid(
            case_code=code, occurred_at=t, status=4, amount=max(proc.fee_vnd, 1000),
            method=PaymentMethod.ONLINE if rng.random() < 0.4 else PaymentMethod.COUNTER,
        ), source="/bench", event_id=str(uuid.UUID(int=rng.getrandbits(128))), sequence=3,
        time=t)
        t += timedelta(days=rng.randrange(1, 10))
        yield new_envelope(Resolved(
            case_code=code, occurred_at=t, status=9, result_digitised=rng.random() < 0.6,
            on_time=rng.random() < 0.95, resolution_days=rng.randrange(0, 20),
        ), source="/bench", event_id=str(uuid.UUID(int=rng.getrandbits(128))), sequence=4,
        time=t)
        t += timedelta(days=1)
        yield new_envelope(Returned(
            case_code=code, occurred_at=t, status=10,
            method=ReturnMethod.POST if rng.random() < 0.2 else ReturnMethod.COUNTER,
        ), source="/bench", event_id=str(uuid.UUID(int=rng.getrandbits(128))), sequence=5,
        time=t)


def realistic_events(n_cases: int, *, seed: int = 1, province: str = "H56",
                     start: date = date(2026, 3, 2), cases_per_day: int = 4000,
                     ) -> Iterator[Envelope]:
    """The case log intake would write for `motcua.loadgen` traffic, in time order.

    Same seeded generator as `motcua simulate`: office hours, the plans' channel mix,
    supplements, payments, transfers, resolution, returns, ratings and late digitisation. Event
    payloads are built here rather than through intake, so the projection is measured alone.
    """
    from intake.lifecycle import next_status
    from motcua.loadgen import LoadGenerator

    cat = Catalogue.load()
    gen = LoadGenerator(cat, province=province, seed=seed)
    days = max(1, -(-n_cases // cases_per_day))
    # key -> (code, status, received, days allowed, events so far: the subject sequence)
    cases: dict[str, tuple[str, int, date, int, int]] = {}
    seq = 0
    for req in gen.requests(start=start, days=days, cases_per_day=cases_per_day):
        body = req.body
        at = datetime.fromisoformat(body.get("received_at") or body["occurred_at"])
        eid = body["event_id"]
        if req.path == "/v1/cases":
            if len(cases) >= n_cases:
                continue
            seq += 1
            agency, proc = cat.agencies[body["agency_code"]], cat.procedures[body["procedure_code"]]
            code = f"{agency.code}-{at:%y%m%d}-{seq % 1_000_000:06d}"
            cases[req.case_key] = (code, 2, at.date(), proc.processing_days, 1)
            level = body["online_level"]
            yield new_envelope(CaseReceived(
                case_code=code, occurred_at=at, status=2, agency_code=agency.code,
                province_code=agency.province,
                district_code=cat.district_of(agency, on=at.date()),
                procedure_code=proc.code, field_code=proc.field_code,
                channel=Channel(body["channel"]),
                online_level=OnlineLevel(level) if level else None,
                return_by_post=body["return_by_post"], processing_days=proc.processing_days,
                fee_vnd=proc.fee_vnd, due_date=at.date() + timedelta(days=proc.processing_days),
            ), source="/bench", event_id=eid, time=at, sequence=1)
            continue
        if req.case_key not in cases:
            continue
        code, status, received, allowed, n = cases[req.case_key]
        kind = body["type"]
        after = next_status(kind, status)
        if after is None:
            continue
        cases[req.case_key] = (code, after, received, allowed, n + 1)
        extra = {k: v for k, v in body.items() if k not in ("type", "event_id", "occurred_at")}
        if kind == "resolved":
            taken = (at.date() - received).days
            extra.update(on_time=taken <= allowed, resolution_days=max(0, taken))
        elif kind == "supplement_received":
            extra["due_date"] = at.date() + timedelta(days=allowed)
        payload = PAYLOADS[kind](case_code=code, occurred_at=at, status=after, **extra)
        yield new_envelope(payload, source="/bench", event_id=eid, time=at, sequence=n + 1)
