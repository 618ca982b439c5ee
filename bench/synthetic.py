"""Synthetic but realistic case events for projection benchmarks (no HTTP, no intake)."""

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from contracts import (
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
        ), source="/bench", event_id=str(uuid.UUID(int=rng.getrandbits(128))), time=at)
        t = at + timedelta(hours=1)
        yield new_envelope(Transferred(
            case_code=code, occurred_at=t, status=4, from_office=agency.code,
            to_office=agency.parent or agency.code, method=TransferMethod.ELECTRONIC,
        ), source="/bench", event_id=str(uuid.UUID(int=rng.getrandbits(128))), time=t)
        t += timedelta(hours=2)
        yield new_envelope(Paid(
            case_code=code, occurred_at=t, status=4, amount=max(proc.fee_vnd, 1000),
            method=PaymentMethod.ONLINE if rng.random() < 0.4 else PaymentMethod.COUNTER,
        ), source="/bench", event_id=str(uuid.UUID(int=rng.getrandbits(128))), time=t)
        t += timedelta(days=rng.randrange(1, 10))
        yield new_envelope(Resolved(
            case_code=code, occurred_at=t, status=9, result_digitised=rng.random() < 0.6,
            on_time=rng.random() < 0.95, resolution_days=rng.randrange(0, 20),
        ), source="/bench", event_id=str(uuid.UUID(int=rng.getrandbits(128))), time=t)
        t += timedelta(days=1)
        yield new_envelope(Returned(
            case_code=code, occurred_at=t, status=10,
            method=ReturnMethod.POST if rng.random() < 0.2 else ReturnMethod.COUNTER,
        ), source="/bench", event_id=str(uuid.UUID(int=rng.getrandbits(128))), time=t)
