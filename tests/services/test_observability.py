"""Shared Prometheus collectors."""

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from services.observability import BatchHistogram

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60)
# On a bound (counted in that bucket: `le`), between bounds, beyond the last, zero.
VALUES = [0.0, 0.01, 0.011, 0.2, 0.3, 1.0, 7.5, 60.0, 61.0, 3600.0, 0.04, 0.04]


def _lines(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines()
            if line.startswith("freshness_seconds") and "_created" not in line]


def test_batch_histogram_exposes_what_prometheus_client_would() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batch = BatchHistogram("freshness_seconds", "Freshness.", buckets=BUCKETS, registry=ours)
    reference = Histogram("freshness_seconds", "Freshness.", buckets=BUCKETS, registry=theirs)
    batch.observe_many(VALUES[:5])
    batch.observe_many(VALUES[5:])
    batch.observe_many([])
    for v in VALUES:
        reference.observe(v)
    got = _lines(ours)
    assert got == _lines(theirs)
    assert 'freshness_seconds_bucket{le="0.01"} 2.0' in got
    assert 'freshness_seconds_bucket{le="0.05"} 5.0' in got
    assert 'freshness_seconds_bucket{le="60.0"} 10.0' in got
    assert 'freshness_seconds_bucket{le="+Inf"} 12.0' in got
    assert "freshness_seconds_count 12.0" in got


def test_batch_histogram_observes_ages_as_it_observes_the_values() -> None:
    now = 1_790_000_000.25
    # Ages between bounds, beyond the last, zero, and two timestamps after now (age 0).
    ages = [0.0, 0.005, 0.012, 0.15, 0.3, 0.7, 7.5, 45.0, 61.0, 3600.0, 0.04, 0.04]
    stamps = [now - a for a in ages] + [now + 0.5, now + 3.0]
    by_value, by_age = CollectorRegistry(), CollectorRegistry()
    values = BatchHistogram("freshness_seconds", "Freshness.", buckets=BUCKETS,
                            registry=by_value)
    aged = BatchHistogram("freshness_seconds", "Freshness.", buckets=BUCKETS, registry=by_age)
    values.observe_many([*ages, 0.0, 0.0])
    aged.observe_ages(reversed(stamps[:7]), now)
    aged.observe_ages(stamps[7:], now)
    aged.observe_ages([], now)
    got = _lines(by_age)
    assert got[:-1] == _lines(by_value)[:-1]
    assert 'freshness_seconds_bucket{le="0.01"} 4.0' in got  # 0, 0.005 and the two after now
    assert 'freshness_seconds_bucket{le="+Inf"} 14.0' in got
    total = float(got[-1].split()[-1])
    assert got[-1].startswith("freshness_seconds_sum")
    assert abs(total - sum(ages)) < 1e-6
