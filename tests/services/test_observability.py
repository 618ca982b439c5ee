"""Shared Prometheus collectors."""

from datetime import UTC, datetime, timedelta, timezone

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from services.observability import BatchHistogram

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60)
# On a bound (counted in that bucket: `le`), between bounds, beyond the last, zero.
VALUES = [0.0, 0.01, 0.011, 0.2, 0.3, 1.0, 7.5, 60.0, 61.0, 3600.0, 0.04, 0.04]
NOW = datetime(2026, 3, 2, 1, 30, 0, 250_000, tzinfo=UTC)
# Events are stamped in local time by counters (+07:00), the consumer's clock is UTC.
LOCAL = timezone(timedelta(hours=7))


def _ago(seconds: float) -> datetime:
    return (NOW - timedelta(seconds=seconds)).astimezone(LOCAL)


def _lines(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines()
            if line.startswith("freshness_seconds") and "_created" not in line]


def _pair() -> tuple[BatchHistogram, Histogram, CollectorRegistry, CollectorRegistry]:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batch = BatchHistogram("freshness_seconds", "Freshness.", buckets=BUCKETS, registry=ours)
    reference = Histogram("freshness_seconds", "Freshness.", buckets=BUCKETS, registry=theirs)
    return batch, reference, ours, theirs


def test_batch_histogram_exposes_what_prometheus_client_would() -> None:
    batch, reference, ours, theirs = _pair()
    # Each age is exactly its value, bounds included.
    batch.observe_ages([_ago(v) for v in VALUES[:5]], NOW)
    batch.observe_ages(reversed([_ago(v) for v in VALUES[5:]]), NOW)
    batch.observe_ages([], NOW)
    for v in VALUES:
        reference.observe(v)
    got = _lines(ours)
    assert got == _lines(theirs)
    assert 'freshness_seconds_bucket{le="0.01"} 2.0' in got
    assert 'freshness_seconds_bucket{le="0.05"} 5.0' in got
    assert 'freshness_seconds_bucket{le="60.0"} 10.0' in got
    assert 'freshness_seconds_bucket{le="+Inf"} 12.0' in got
    assert "freshness_seconds_count 12.0" in got


def test_a_timestamp_after_now_is_observed_as_age_zero() -> None:
    batch, reference, ours, theirs = _pair()
    ages = [0.005, 0.15, 7.5, 3600.0]
    batch.observe_ages([_ago(-3.0), *map(_ago, ages), _ago(-0.5)], NOW)
    for v in [0.0, *ages, 0.0]:
        reference.observe(v)
    got, want = _lines(ours), _lines(theirs)
    assert got[:-1] == want[:-1]  # every bucket and the count
    assert 'freshness_seconds_bucket{le="0.01"} 3.0' in got  # 0.005 and the two after now
    assert got[-1].startswith("freshness_seconds_sum")
    assert abs(float(got[-1].split()[-1]) - sum(ages)) < 1e-6
