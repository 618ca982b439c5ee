"""The collector threshold a service process starts with (services.runtime.tune_gc)."""

import gc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from bench.synthetic import realistic_events
from contracts import decode, encode
from contracts.cases import Transferred
from contracts.envelope import new_envelope
from intake.audit import Actor, Note
from intake.schemas import BatchEventCreate
from intake.settings import IntakeSettings
from intake.state import CaseState
from intake.writer import Item
from metrics.settings import MetricsSettings
from routing.settings import RoutingSettings
from services.runtime import GEN0_THRESHOLD

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
ACTOR = Actor("counter-1", "counter", "req-1", "127.0.0.1")


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)


def test_metrics_collects_young_objects_less_often_than_the_other_services(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert IntakeSettings().gc_young_threshold == 100_000
    assert RoutingSettings().gc_young_threshold == GEN0_THRESHOLD
    assert MetricsSettings().gc_young_threshold == 500_000
    monkeypatch.setenv("MOTCUA_INTAKE_GC_YOUNG_THRESHOLD", "20000")
    assert IntakeSettings().gc_young_threshold == 20_000
    monkeypatch.setenv("MOTCUA_METRICS_GC_YOUNG_THRESHOLD", "250000")
    assert MetricsSettings().gc_young_threshold == 250_000
    monkeypatch.setenv("MOTCUA_METRICS_GC_YOUNG_THRESHOLD", "10")
    with pytest.raises(ValueError, match="gc_young_threshold"):
        MetricsSettings()


def test_two_batches_in_flight_are_not_walked_by_the_collector_at_metrics_threshold(
        restored_gc: None) -> None:
    batch = MetricsSettings().consumer_batch_size
    values = [encode(e)[1] for e in realistic_events(batch // 2)][: 2 * batch]
    assert len(values) == 2 * batch
    gc.set_threshold(GEN0_THRESHOLD, 10, 10)
    assert _collections_while_decoding(values) > 10
    gc.set_threshold(MetricsSettings().gc_young_threshold, 10, 10)
    assert _collections_while_decoding(values) == 0


def _collections_while_decoding(values: list[bytes]) -> int:
    """Two batches of envelopes decoded and held, as the consumer holds the batch being
    applied and the next one."""
    pending = iter(values)
    return _collections_while_held(lambda: decode(next(pending)), len(values))


def _collections_while_held(build: Callable[[], object], count: int) -> int:
    """Collections of any generation while `count` results of `build` are made and held."""
    seen = 0

    def counted(phase: str, _info: dict[str, int]) -> None:
        nonlocal seen
        seen += phase == "start"

    gc.collect()
    gc.callbacks.append(counted)
    try:
        held = [build() for _ in range(count)]
    finally:
        gc.callbacks.remove(counted)
    assert len(held) == count
    return seen


def test_a_full_write_batch_is_not_walked_by_the_collector_at_intakes_threshold(
        restored_gc: None) -> None:
    """Eight batch requests of 100 transfers in flight, as the benchmark sends them: each item
    parsed, with its audit note, the case it copies and the payload and envelope it adds."""
    state = _case_state()

    def item() -> object:
        raw = {"case_code": state.case_code, "type": "transferred",
               "event_id": str(uuid.uuid4()), "from_office": "000.00.20.H56",
               "to_office": "000.00.03.H56", "method": "electronic"}
        parsed = BatchEventCreate.model_validate(raw)
        note = Note(ACTOR, f"case.{parsed.type}", case_code=parsed.case_code)
        case = state.copy()
        payload = Transferred(case_code=case.case_code, occurred_at=NOW, status=4,
                                  from_office="000.00.20.H56", to_office="000.00.03.H56",
                                  method="electronic")
        envelope = new_envelope(payload, source="/motcua/intake", event_id=raw["event_id"],
                                time=NOW, sequence=2)
        return (raw, parsed, note, Item(_noop, {"data": parsed}, note), case, case.row(),
                envelope, payload.details())

    gc.set_threshold(GEN0_THRESHOLD, 10, 10)
    assert _collections_while_held(item, 800) > 0
    gc.set_threshold(IntakeSettings().gc_young_threshold, 10, 10)
    assert _collections_while_held(item, 800) == 0


def _noop() -> None:
    return None


def _case_state() -> CaseState:
    return CaseState(case_code="000.00.20.H56-260302-0001", agency_code="000.00.20.H56",
                     province_code="H56", procedure_code="2.000488", procedure_name="Khai sinh",
                     field_code="ho-tich", status=2, received_at=NOW,
                     receipt_date=NOW.date(), processing_days=5, updated_at=NOW)


def test_routing_takes_smaller_batches_than_metrics_unless_told_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Routing holds a batch as ORM rows: at 10,000 its catch-up peaked near the 300 MB goal.
    monkeypatch.delenv("MOTCUA_CONSUMER_BATCH_SIZE", raising=False)
    monkeypatch.delenv("MOTCUA_ROUTING_CONSUMER_BATCH_SIZE", raising=False)
    assert RoutingSettings().consumer_batch_size == 5_000
    assert MetricsSettings().consumer_batch_size == 10_000
    monkeypatch.setenv("MOTCUA_CONSUMER_BATCH_SIZE", "20")  # every service's, as the fault suite
    assert (RoutingSettings().consumer_batch_size, MetricsSettings().consumer_batch_size) == (
        20, 20)
    monkeypatch.setenv("MOTCUA_ROUTING_CONSUMER_BATCH_SIZE", "300")
    assert (RoutingSettings().consumer_batch_size, MetricsSettings().consumer_batch_size) == (
        300, 20)
    monkeypatch.setenv("MOTCUA_ROUTING_CONSUMER_BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="MOTCUA_ROUTING_CONSUMER_BATCH_SIZE"):
        RoutingSettings()
