"""Bench 6 (memory): `motcua routing` catching up a backlog of the case log, as after an outage,
on real Kafka and PostgreSQL: events/s and the process's peak RSS, for backlogs of growing
size. The goal is a service under 300 MB, flat as history grows: routing holds a batch of ORM
rows and the next batch, fetched ahead, so its peak follows the batch size, not the backlog.

Each backlog gets its own topic prefix and database; routing runs as the real command in its
own process. Its rate is timed from its readiness to its consumer's lag reaching zero.
Run: .venv/bin/python -m bench.routing_catchup [--cases 20000 80000] [--batch 5000]
"""

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.common import ROOT, auth_env, free_port, peak_rss_mb, save, server
from bench.projection import KAFKA, fresh_database, produce


def _lag(text: str) -> float | None:
    """The consumer's lag summed over its topics, None before it has reported any."""
    samples = [s.value for family in text_string_to_metric_families(text)
               if family.name == "motcua_consumer_lag_messages" for s in family.samples]
    return sum(samples) if samples else None


def catch_up(cases: int, batch: int | None, timeout: float = 600) -> dict[str, Any]:
    prefix = f"benchrc{uuid.uuid4().hex[:6]}."
    events = asyncio.run(produce(prefix, cases))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": KAFKA, "MOTCUA_TOPIC_PREFIX": prefix,
                "MOTCUA_LOG_LEVEL": "WARNING", "ROUTING_DATABASE_URL": fresh_database(),
                "MOTCUA_DATA_DIR": tempfile.mkdtemp(prefix="motcua-bench-"), **auth_env()})
    if batch is not None:
        env["MOTCUA_ROUTING_CONSUMER_BATCH_SIZE"] = str(batch)
    base = f"http://127.0.0.1:{port}"
    cmd = [str(ROOT / ".venv" / "bin" / "python"), "-m", "motcua.cli", "routing", "--port",
           str(port)]
    with server(cmd, f"{base}/readyz", env=env) as proc, \
            httpx.Client(base_url=base, timeout=5) as client:
        ready_at = time.monotonic()
        while time.monotonic() - ready_at < timeout:
            time.sleep(0.25)
            try:
                lag = _lag(client.get("/metrics").text)
            except httpx.HTTPError:
                continue
            # The lag is known once the consumer has joined; it reaches 0 when caught up.
            if lag == 0 and time.monotonic() - ready_at > 3:
                break
        else:
            raise RuntimeError(f"routing did not catch up {events} events in {timeout}s")
        seconds = time.monotonic() - ready_at
        return {"events": events, "seconds": seconds, "events_per_s": events / seconds,
                "peak_rss_mb": peak_rss_mb(proc.pid)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, nargs="+", default=[20_000, 80_000])
    parser.add_argument("--batch", type=int, default=None,
                        help="routing's consumer batch size (default: routing's own)")
    parser.add_argument("--name", default="routing_catchup", help="bench/results/<name>.json")
    args = parser.parse_args()
    runs = [catch_up(n, args.batch) for n in args.cases]
    for r in runs:
        print(f"{r['events']:>9,} events behind: caught up at {r['events_per_s']:,.0f} events/s "
              f"in {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB")
    save(args.name, {"batch_size": args.batch, "runs": runs,
                     "ratio_rss_largest_vs_smallest":
                         runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"]})


if __name__ == "__main__":
    main()
