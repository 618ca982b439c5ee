"""The collector threshold a service process starts with (services.runtime.tune_gc)."""

import gc
from collections.abc import Iterator

import pytest

from bench.synthetic import realistic_events
from contracts import decode, encode
from intake.settings import IntakeSettings
from metrics.settings import MetricsSettings
from routing.settings import RoutingSettings
from services.runtime import GEN0_THRESHOLD


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)


def test_metrics_collects_young_objects_less_often_than_the_other_services(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert IntakeSettings().gc_young_threshold == GEN0_THRESHOLD
    assert RoutingSettings().gc_young_threshold == GEN0_THRESHOLD
    assert MetricsSettings().gc_young_threshold == 500_000
    monkeypatch.setenv("MOTCUA_METRICS_GC_YOUNG_THRESHOLD", "250000")
    assert MetricsSettings().gc_young_threshold == 250_000
    monkeypatch.setenv("MOTCUA_METRICS_GC_YOUNG_THRESHOLD", "10")
    with pytest.raises(ValueError, match="gc_young_threshold"):
        MetricsSettings()


def _collections_while_decoding(values: list[bytes]) -> int:
    """Collections of any generation while two batches of envelopes are decoded and held, as
    the consumer holds the batch being applied and the next one."""
    seen = 0

    def count(phase: str, _info: dict[str, int]) -> None:
        nonlocal seen
        seen += phase == "start"

    gc.collect()
    gc.callbacks.append(count)
    try:
        held = [decode(v) for v in values]
    finally:
        gc.callbacks.remove(count)
    assert len(held) == len(values)
    return seen


def test_two_batches_in_flight_are_not_walked_by_the_collector_at_metrics_threshold(
        restored_gc: None) -> None:
    batch = MetricsSettings().consumer_batch_size
    values = [encode(e)[1] for e in realistic_events(batch // 2)][: 2 * batch]
    assert len(values) == 2 * batch
    gc.set_threshold(GEN0_THRESHOLD, 10, 10)
    assert _collections_while_decoding(values) > 10
    gc.set_threshold(MetricsSettings().gc_young_threshold, 10, 10)
    assert _collections_while_decoding(values) == 0


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
