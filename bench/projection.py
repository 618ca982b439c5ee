"""Bench 2: the metrics projection consuming from Kafka into PostgreSQL, events/s, against a
bare aiokafka consumer that only decodes the same messages.

The case log is `motcua.loadgen` traffic in time order (bench.synthetic.realistic_events), as
the live topic carries it; `--events synthetic` spreads every case's five events over a random
day of a year instead, the worst case for the counters (about 23 counter rows per event, against
2 for realistic traffic). Needs the broker and PostgreSQL of scripts/kafka.sh and
scripts/postgres.sh. Run: .venv/bin/python -m bench.projection [--cases 40000]
"""

import argparse
import asyncio
import os
import resource
import statistics
import time
import uuid
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from bench.common import peak_rss_mb, save
from bench.synthetic import case_events, realistic_events
from contracts import CASES_TOPIC, decode, encode
from metrics.app import MetricsComponent
from metrics.settings import MetricsSettings
from services.bus.base import Record
from services.bus.kafka import KafkaBus
from services.runtime import tune_gc

KAFKA = os.environ.get("MOTCUA_BENCH_KAFKA", "127.0.0.1:9092")
PG = os.environ.get("MOTCUA_BENCH_DATABASE_URL",
                    "postgresql+psycopg://motcua:motcua@127.0.0.1:5433/motcua")


def fresh_database() -> str:
    name = f"motcua_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG.rsplit("/", 1)[0] + "/" + name


async def produce(prefix: str, cases: int, kind: str = "realistic") -> int:
    bus = KafkaBus(KAFKA, partitions=6)
    await bus.start()
    await bus.ensure_topics([prefix + CASES_TOPIC])
    n, batch = 0, []
    for env in (realistic_events if kind == "realistic" else case_events)(cases):
        key, value, headers = encode(env)
        batch.append(Record(prefix + CASES_TOPIC, key, value, tuple(headers)))
        if len(batch) >= 5000:
            await bus.publish(batch)
            n += len(batch)
            batch = []
    await bus.publish(batch)
    await bus.close()
    return n + len(batch)


def cpu_seconds() -> float:
    """This process's CPU time (all threads): steadier than wall time on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def bare_consumer(topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, group_id=f"bare-{uuid.uuid4()}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen, started = 0, time.perf_counter()
    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                for r in records:
                    decode(r.value or b"")
                    seen += 1
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
    return seen / (time.perf_counter() - started)


async def motcua_projection(prefix: str, total: int, batch: int) -> tuple[float, float]:
    """(events/s, CPU seconds) of the consumer from its start to the last event applied."""
    url = fresh_database()
    settings = MetricsSettings(kafka_bootstrap_servers=KAFKA, database_url=url,
                               topic_prefix=prefix, consumer_batch_size=batch)
    bus = KafkaBus(KAFKA)
    await bus.start()
    component = MetricsComponent(settings, bus=bus, registry=CollectorRegistry())
    await component.start()
    stop = asyncio.Event()
    started, cpu = time.perf_counter(), cpu_seconds()
    task = asyncio.create_task(component.consumer.supervise(stop))
    while component.consumer.stats.consumed < total:
        await asyncio.sleep(0.05)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    stop.set()
    await task
    await component.stop()
    await bus.close()
    return total / elapsed, cpu


def run(cases: int, batch: int, kind: str = "realistic", rounds: int = 3) -> dict[str, Any]:
    """The bare consumer and the projection alternated `rounds` times over the same log (the
    projection into a fresh database each time): figures are the rounds' medians, the ratio
    the median of each round's ratio, because this machine's speed drifts within minutes."""
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    total = asyncio.run(produce(prefix, cases, kind))
    # As the metrics service's process starts (motcua.commands.run.serve, with metrics'
    # collector threshold); the baseline gets it too.
    tune_gc(MetricsSettings.model_fields["gc_young_threshold"].default)
    # One untimed pass first: a broker that has just started serves its first reads of a log
    # much slower (its JIT still cold), which made the first round's baseline slow and its
    # ratio flattering, 0.52 against 0.32-0.39 for the rounds after (docs/benchmarks.md,
    # seventeenth and eighteenth passes).
    warm_up = asyncio.run(bare_consumer(prefix + CASES_TOPIC, total))
    runs = []
    for _ in range(rounds):
        cpu = cpu_seconds()
        bare = asyncio.run(bare_consumer(prefix + CASES_TOPIC, total))
        cpu_bare = cpu_seconds() - cpu
        ours, cpu_ours = asyncio.run(motcua_projection(prefix, total, batch))
        runs.append({"bare_consumer_events_per_s": bare, "projection_events_per_s": ours,
                     "ratio": ours / bare,
                     # Client CPU per event (the database server's is not counted).
                     "bare_cpu_us_per_event": cpu_bare / total * 1e6,
                     "projection_cpu_us_per_event": cpu_ours / total * 1e6})
    out: dict[str, Any] = {"events": total, "event_mix": kind, "batch_size": batch,
                           "rounds": rounds, "runs": runs,
                           "warm_up_bare_events_per_s": warm_up}
    for key in runs[0]:
        out[key] = statistics.median(r[key] for r in runs)
    out["peak_rss_mb"] = peak_rss_mb(os.getpid())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=40_000)
    parser.add_argument("--batch", type=int,
                        default=MetricsSettings.model_fields["consumer_batch_size"].default,
                        help="the consumer's batch size (default: the service's)")
    parser.add_argument("--events", choices=("realistic", "synthetic"), default="realistic")
    parser.add_argument("--rounds", type=int, default=3,
                        help="bare consumer and projection alternated this many times")
    args = parser.parse_args()
    r = run(args.cases, args.batch, args.events, args.rounds)
    print(f"events {r['events']}: bare consumer {r['bare_consumer_events_per_s']:.0f}/s, "
          f"projection {r['projection_events_per_s']:.0f}/s, ratio {r['ratio']:.3f}; CPU "
          f"{r['bare_cpu_us_per_event']:.1f} vs {r['projection_cpu_us_per_event']:.1f} µs/event "
          f"(medians of {r['rounds']} rounds; ratios "
          f"{', '.join(format(x['ratio'], '.3f') for x in r['runs'])}); "
          f"peak RSS {r['peak_rss_mb']:.0f} MB")
    save("projection", r)


if __name__ == "__main__":
    main()
