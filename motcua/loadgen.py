"""A realistic, deterministic (seeded) load of counter traffic for one province.

Cases arrive in office hours (Mon-Fri 07:30-11:30 and 13:30-17:00 local, busier mornings and
Mondays), through the channel mix the provincial plans aim at, and live through supplements,
payments, transfers, resolution, return, rating and late digitisation. The same generator drives
`motcua simulate` and the benchmarks in bench/.
"""

import heapq
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from registry.catalogue import Agency, Catalogue, Procedure
from services.clock import LOCAL_TZ


@dataclass(frozen=True)
class Mix:
    """Shares drawn from DOMAIN.md's plan targets (Bắc Ninh, Bắc Giang, Lai Châu, Đắk Nông)."""

    online: float = 0.55
    full_of_online: float = 0.6
    postal_intake: float = 0.06
    return_by_post: float = 0.22
    counter_transfer: float = 0.3
    electronic_transfer: float = 0.95
    online_payment: float = 0.35
    supplement: float = 0.08
    second_supplement: float = 0.1
    withdraw: float = 0.02
    resolve: float = 0.9
    digitise_at_resolution: float = 0.6
    digitise_later: float = 0.5
    rate: float = 0.4
    satisfied: float = 0.92


@dataclass(order=True)
class Request:
    at: datetime
    seq: int
    method: str = field(compare=False)
    path: str = field(compare=False)
    body: dict[str, Any] = field(compare=False)
    case_key: str = field(compare=False)


_MORNING = (time(7, 30), time(11, 30))
_AFTERNOON = (time(13, 30), time(17, 0))


def office_instant(rng: random.Random, day: date) -> datetime:
    """A moment of the working day, mornings twice as busy as afternoons."""
    start, end = _MORNING if rng.random() < 2 / 3 else _AFTERNOON
    a = datetime.combine(day, start, LOCAL_TZ)
    b = datetime.combine(day, end, LOCAL_TZ)
    return a + (b - a) * rng.random()


def _later(rng: random.Random, t: datetime, max_days: float) -> datetime:
    """A later office-hours instant, up to `max_days` working days on."""
    day = t.astimezone(LOCAL_TZ).date()
    for _ in range(max(0, int(rng.random() * max_days))):
        day += timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
    candidate = office_instant(rng, day)
    return candidate if candidate > t else t + timedelta(minutes=rng.randrange(5, 90))


class LoadGenerator:
    def __init__(self, catalogue: Catalogue, *, province: str, seed: int,
                 mix: Mix | None = None) -> None:
        self.catalogue = catalogue
        self.province = province
        self.rng = random.Random(seed)
        self.mix = mix or Mix()
        self._seq = 0

    def _agencies(self, on: date) -> list[Agency]:
        found = sorted((a for a in self.catalogue.agencies.values()
                        if a.province == self.province and a.reception and a.active_on(on)),
                       key=lambda a: a.code)
        if not found:
            raise ValueError(f"no reception counter in province {self.province} on {on}")
        return found

    def requests(self, *, start: date, days: int, cases_per_day: int,
                 not_after: datetime | None = None) -> Iterator[Request]:
        """Every request of `days` working days of traffic, in time order."""
        heap: list[Request] = []
        procedures = sorted(self.catalogue.procedures.values(), key=lambda p: p.code)
        day, produced = start, 0
        while produced < days:
            if day.weekday() < 5:
                # Mondays run 30% above the week's average.
                n = int(cases_per_day * (1.3 if day.weekday() == 0 else 0.925))
                arrivals = sorted(office_instant(self.rng, day) for _ in range(n))
                agencies = self._agencies(day)
                for at in arrivals:
                    while heap and heap[0].at <= at:
                        yield heapq.heappop(heap)
                    for r in self._case(at, self.rng.choice(agencies),
                                        self.rng.choice(procedures)):
                        if not_after is None or r.at <= not_after:
                            heapq.heappush(heap, r)
                produced += 1
            day += timedelta(days=1)
        while heap:
            yield heapq.heappop(heap)

    def _request(self, at: datetime, path: str, body: dict[str, Any], key: str) -> Request:
        self._seq += 1
        return Request(at=at, seq=self._seq, method="POST", path=path, body=body, case_key=key)

    def _case(self, at: datetime, agency: Agency, procedure: Procedure) -> list[Request]:
        rng, mix = self.rng, self.mix
        key = str(uuid.UUID(int=rng.getrandbits(128)))
        channel, level = "counter", None
        if procedure.online_levels and rng.random() < mix.online:
            channel = "online"
            full = "full" in procedure.online_levels and rng.random() < mix.full_of_online
            level = "full" if full else procedure.online_levels[0]
        elif rng.random() < mix.postal_intake:
            channel = "postal"
        by_post = rng.random() < mix.return_by_post
        out = [self._request(at, "/v1/cases", {
            "event_id": key, "agency_code": agency.code, "procedure_code": procedure.code,
            "channel": channel, "online_level": level, "received_at": at.isoformat(),
            "return_by_post": by_post,
        }, key)]
        events: list[tuple[datetime, dict[str, Any]]] = []
        t = at
        if agency.parent and rng.random() < mix.counter_transfer:
            # A counter sending the file up to its parent office (the rest is routing's job).
            t = _later(rng, t, 1)
            method = "electronic" if rng.random() < mix.electronic_transfer else "paper"
            events.append((t, {"type": "transferred", "from_office": agency.code,
                               "to_office": agency.parent, "method": method}))
        if procedure.fee_vnd:
            t = _later(rng, t, 1)
            online = rng.random() < mix.online_payment or level == "full"
            pay: dict[str, Any] = {"type": "paid", "amount": procedure.fee_vnd,
                                   "method": "online" if online else rng.choice(
                                       ["counter", "counter", "post"])}
            if online:
                pay["portal"] = rng.choice(["national", "provincial"])
            events.append((t, pay))
        if rng.random() < mix.supplement:
            for _ in range(2 if rng.random() < mix.second_supplement else 1):
                t = _later(rng, t, 2)
                events.append((t, {"type": "supplement_requested",
                                   "reason": "Bổ sung bản sao giấy tờ tùy thân"}))
                t = _later(rng, t, 3)
                events.append((t, {"type": "supplement_received"}))
        if rng.random() < mix.withdraw:
            t = _later(rng, t, 2)
            events.append((t, {"type": "withdrawn", "reason": "Công dân xin rút hồ sơ"}))
        elif rng.random() < mix.resolve:
            t = _later(rng, t, max(1, procedure.processing_days * 1.1))
            digitised = rng.random() < mix.digitise_at_resolution
            events.append((t, {"type": "resolved", "result_digitised": digitised}))
            t = _later(rng, t, 2)
            method = "post" if by_post else ("online" if level == "full" else "counter")
            events.append((t, {"type": "returned", "method": method}))
            if rng.random() < mix.rate:
                t = _later(rng, t, 1)
                good = rng.random() < mix.satisfied
                events.append((t, {"type": "rated", "rating": rng.choice(
                    ["satisfied", "very_satisfied"] if good else ["neutral", "dissatisfied"])}))
            if not digitised and rng.random() < mix.digitise_later:
                t = _later(rng, t, 20)
                events.append((t, {"type": "result_digitised"}))
        for when, ev in events:
            ev["event_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
            ev["occurred_at"] = when.isoformat()
            # The case code is only known once intake answers; `{case}` is filled in then.
            out.append(self._request(when, "/v1/cases/{case}/events", ev, key))
        return out
