"""Prometheus collectors every service shares: consumer progress and outbox backlog."""

import math
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from itertools import pairwise, repeat
from operator import sub

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from services.consumer import ConsumerRunner

_ZERO = timedelta()


class ConsumerCollector(Collector):
    """Labels: group and topic (a handful each), never partition-per-case or case codes."""

    def __init__(self, runners: Callable[[], Iterable[ConsumerRunner]]) -> None:
        self._runners = runners

    def collect(self) -> Iterable[Metric]:
        consumed = CounterMetricFamily("motcua_consumer_messages", "Messages consumed.",
                                       labels=["group"])
        applied = CounterMetricFamily("motcua_consumer_events_applied",
                                      "Events applied for the first time.", labels=["group"])
        dups = CounterMetricFamily("motcua_consumer_duplicates",
                                   "Redelivered events recognised and skipped.", labels=["group"])
        dead = CounterMetricFamily("motcua_consumer_dead_letters",
                                   "Messages sent to the dead-letter topic.", labels=["group"])
        restarts = CounterMetricFamily("motcua_consumer_restarts",
                                       "Consumer loop restarts after a crash.", labels=["group"])
        lag = GaugeMetricFamily("motcua_consumer_lag_messages",
                                "Messages not yet consumed, summed over partitions.",
                                labels=["group", "topic"])
        running = GaugeMetricFamily("motcua_consumer_up", "1 while the consumer loop runs.",
                                    labels=["group"])
        parked = GaugeMetricFamily("motcua_consumer_parked_partitions",
                                   "Partitions waiting at an event version newer than this "
                                   "build knows (upgrade the service).", labels=["group"])
        last = GaugeMetricFamily("motcua_consumer_last_batch_timestamp_seconds",
                                 "When the last batch was committed (Unix time).",
                                 labels=["group"])
        for r in self._runners():
            g = r.group_id
            s = r.stats
            consumed.add_metric([g], s.consumed)
            applied.add_metric([g], s.applied)
            dups.add_metric([g], s.duplicates)
            dead.add_metric([g], s.dead_lettered)
            restarts.add_metric([g], s.restarts)
            running.add_metric([g], 1.0 if s.running else 0.0)
            parked.add_metric([g], len(s.parked))
            if s.last_batch_at is not None:
                last.add_metric([g], s.last_batch_at)
            per_topic: dict[str, int] = {}
            for tp, n in s.lag.items():
                per_topic[tp.topic] = per_topic.get(tp.topic, 0) + n
            for topic, n in sorted(per_topic.items()):
                lag.add_metric([g, topic], n)
        yield from (consumed, applied, dups, dead, restarts, lag, running, parked, last)


class BatchHistogram(Collector):
    """A histogram observed a batch at a time, for a consumer's per-event figures.

    prometheus_client's Histogram takes two locks and walks the buckets for every value: on
    the projection's path that was a few per cent of its time per event. Here a batch is
    tallied without locks and added under one; the exposition is the same (`_bucket` with
    `le`, `_count`, `_sum`)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 registry: CollectorRegistry) -> None:
        self._name = name
        self._doc = documentation
        self._bounds = [*sorted(float(b) for b in buckets if b != math.inf), math.inf]
        self._deltas = [timedelta(seconds=b) if b != math.inf else None for b in self._bounds]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_ages(self, times: Iterable[datetime], now: datetime) -> None:
        """Observe `now - time` for each aware time, 0 for one after `now` (a producer's clock
        ahead of ours). The times are sorted and each bucket bound found by bisection, with no
        Python step per value: a loop observing each age cost the projection 2 µs an event
        (docs/benchmarks.md). Compared and subtracted as datetimes: turning each into a
        timestamp first cost twice as much (fifteenth pass)."""
        ordered = sorted(times)
        n = len(ordered)
        if not n:
            return
        past = bisect_right(ordered, now)
        total = sum(map(sub, repeat(now, past), ordered[:past]), _ZERO).total_seconds()
        # An age is within bound b when its time is at or after now - b.
        within = [n - bisect_left(ordered, now - bound) if bound is not None else n
                  for bound in self._deltas]
        counts = [within[0], *(b - a for a, b in pairwise(within))]
        with self._lock:
            self._counts = [a + b for a, b in zip(self._counts, counts, strict=True)]
            self._sum += total

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, n in zip(self._bounds, counts, strict=True):
            running += n
            cumulative.append(("+Inf" if bound == math.inf else repr(bound), running))
        yield HistogramMetricFamily(self._name, self._doc, buckets=cumulative, sum_value=total)


class OutboxCollector(Collector):
    def __init__(self, service: str, backlog: Callable[[], int], published: Callable[[], int]):
        self._service = service
        self._backlog = backlog
        self._published = published

    def collect(self) -> Iterable[Metric]:
        g = GaugeMetricFamily("motcua_outbox_backlog_events",
                              "Committed events waiting to be published.", labels=["service"])
        g.add_metric([self._service], self._backlog())
        c = CounterMetricFamily("motcua_outbox_published_events",
                                "Events the relay published to the bus.", labels=["service"])
        c.add_metric([self._service], self._published())
        yield g
        yield c


class _Merged(Collector):
    """Every collector registered through `register` on one registry, exposed as one.

    In one process (`motcua up`) the three services share a registry and each brings its own
    consumer and outbox collectors: their families are merged by name, because a second HELP or
    TYPE line for the same metric makes the exposition invalid."""

    def __init__(self) -> None:
        self.parts: list[Collector] = []

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for part in self.parts:
            for family in part.collect():
                if family.name in families:
                    families[family.name].samples.extend(family.samples)
                else:
                    families[family.name] = family
        yield from families.values()


def register(registry: CollectorRegistry, *collectors: Collector) -> None:
    merged = getattr(registry, "_motcua_merged", None)
    if merged is None:
        merged = _Merged()
        registry._motcua_merged = merged  # type: ignore[attr-defined]
        registry.register(merged)
    merged.parts.extend(collectors)
