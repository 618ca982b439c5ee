"""Bench 4: rebuilding the KPI projection from a long case log (`motcua metrics rebuild`) on
real Kafka and PostgreSQL: events/s, total time and the rebuild process's peak RSS, against a
bare aiokafka consumer that only decodes the same log (the baseline).

The log is `motcua.loadgen` traffic (bench.synthetic.realistic_events). Each size gets its own
topic and database; the rebuild runs as the real command in its own process, so its memory is
its own. The goal is 10 million events in 5 minutes: sizes this machine cannot afford in one
run are extrapolated from the largest size measured, and the JSON says so.
Run: .venv/bin/python -m bench.rebuild [--sizes 100000 400000] [--log PREFIX]
"""

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from bench.common import ROOT, peak_rss_mb, save
from bench.projection import KAFKA, bare_consumer, fresh_database, produce
from contracts import CASES_TOPIC
from services.bus.kafka import KafkaBus
from services.runtime import tune_gc

GOAL_EVENTS = 10_000_000


def rebuild_once(prefix: str, batch: int) -> dict[str, Any]:
    py = str(ROOT / ".venv" / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": KAFKA, "MOTCUA_TOPIC_PREFIX": prefix,
                "METRICS_DATABASE_URL": fresh_database(), "MOTCUA_LOG_LEVEL": "WARNING"})
    started = time.perf_counter()
    proc = subprocess.Popen([py, "-m", "motcua.cli", "metrics", "rebuild", "--batch-size",
                             str(batch)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    rss = 0.0
    while proc.poll() is None:
        with contextlib.suppress(OSError, ValueError):  # exiting
            rss = max(rss, peak_rss_mb(proc.pid))
        time.sleep(0.2)
    total = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"rebuild exited with {proc.returncode}: {out}")
    m = re.search(r"from (\d+) records of the case log in ([\d.]+)s", out)
    if m is None:
        raise RuntimeError(f"unexpected rebuild output: {out}")
    records, seconds = int(m.group(1)), float(m.group(2))
    return {"records": records, "rebuild_seconds": seconds, "process_seconds": total,
            "events_per_s": records / seconds, "peak_rss_mb": rss, "summary": out.strip()}


async def log_size(prefix: str) -> int:
    bus = KafkaBus(KAFKA)
    await bus.start()
    try:
        return sum((await bus.end_offsets([prefix + CASES_TOPIC])).values())
    finally:
        await bus.close()


def run(sizes: list[int], batch: int, logs: Sequence[str] = ()) -> dict[str, Any]:
    result: dict[str, Any] = {"batch_size": batch, "sizes": {}}
    tune_gc()  # the baseline as the rebuild command's process runs (motcua metrics rebuild)
    todo: list[int | str] = [*sizes, *logs]
    for cases_or_log in todo:
        if isinstance(cases_or_log, str):
            # A log an earlier run produced (producing ten million events takes ten minutes).
            prefix, events = cases_or_log, asyncio.run(log_size(cases_or_log))
            print(f"{events} events in {prefix}{CASES_TOPIC}", file=sys.stderr)
        else:
            prefix = f"rebuild{uuid.uuid4().hex[:6]}."
            t = time.perf_counter()
            events = asyncio.run(produce(prefix, cases_or_log))
            print(f"{events} events produced in {time.perf_counter() - t:.0f}s", file=sys.stderr)
        bare = asyncio.run(bare_consumer(prefix + CASES_TOPIC, events))
        ours = rebuild_once(prefix, batch)
        ours.update(events=events, bare_consumer_events_per_s=bare,
                    ratio=ours["events_per_s"] / bare)
        result["sizes"][str(events)] = ours
        print(f"{events:>9} events: rebuild {ours['events_per_s']:.0f}/s in "
              f"{ours['rebuild_seconds']:.1f}s (process {ours['process_seconds']:.1f}s), bare "
              f"consumer {bare:.0f}/s, ratio {ours['ratio']:.3f}, peak RSS "
              f"{ours['peak_rss_mb']:.0f} MB", file=sys.stderr)
    largest = result["sizes"][max(result["sizes"], key=int)]
    rate = largest["events_per_s"]
    result["largest_events"] = largest["events"]
    result["events_per_s"] = rate
    result["ratio"] = largest["ratio"]
    result["peak_rss_mb"] = max(s["peak_rss_mb"] for s in result["sizes"].values())
    # Measured, not extrapolated, when the largest size reached the goal's size.
    result["ten_million_extrapolated"] = largest["events"] < GOAL_EVENTS
    result["ten_million_seconds"] = GOAL_EVENTS / rate
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 100_000],
                        help="cases in the log (about 4.4 events each)")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--log", nargs="*", default=[], metavar="PREFIX",
                        help="also rebuild the case log an earlier run left under this topic "
                        "prefix (e.g. rebuild1a2b3c.)")
    parser.add_argument("--name", default="rebuild", help="bench/results/<name>.json")
    args = parser.parse_args()
    r = run([] if args.log and args.sizes == parser.get_default("sizes") else args.sizes,
            args.batch, args.log)
    how = "extrapolated from" if r["ten_million_extrapolated"] else "measured at"
    print(f"rebuild {r['events_per_s']:.0f} events/s ({how} {r['largest_events']} events): "
          f"10M events in {r['ten_million_seconds'] / 60:.1f} min; ratio to the bare consumer "
          f"{r['ratio']:.3f}; peak RSS {r['peak_rss_mb']:.0f} MB")
    save(args.name, r)


if __name__ == "__main__":
    main()
