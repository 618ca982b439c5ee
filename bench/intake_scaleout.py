"""Bench 1b: the intake tier as a province scales it, N `motcua intake` processes on one
PostgreSQL database and one topic prefix, each under its own `wrk` (64 / N connections), against
one process with all 64 connections in the same run (the baseline). Bodies, authentication and
the server settings are bench/intake_http.py's.
Run: .venv/bin/python -m bench.intake_scaleout [--processes 2]
"""

import argparse
import tempfile
import threading
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import bearer, free_port, peak_rss_mb, save, server
from bench.intake_http import MANY_LUA, lua_string, motcua_command, realistic_bodies, wrk
from bench.projection import fresh_database

CONNECTIONS = 64


def tier(processes: int, seconds: int, database: str, prefix: str, lua: str) -> dict[str, Any]:
    """Every process loaded at once; requests per second summed, the worst p99."""
    with ExitStack() as stack:
        procs, urls = [], []
        for _ in range(processes):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            data = Path(tempfile.mkdtemp(prefix="motcua-bench-"))
            cmd, env = motcua_command("intake", port, data, database=database, prefix=prefix)
            procs.append(stack.enter_context(server(cmd, f"{base}/readyz", env=env,
                                                    log=data / "server.log")))
            urls.append(f"{base}/v1/cases")
        each = CONNECTIONS // processes
        for url in urls:  # warm-up: connections, token cache, catalogue
            wrk(url, lua, connections=each, seconds=3, threads=1)
        results: dict[str, dict[str, Any]] = {}

        def load(url: str) -> None:
            results[url] = wrk(url, lua, connections=each, seconds=seconds, threads=1)

        threads = [threading.Thread(target=load, args=(u,)) for u in urls]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"processes": processes, "connections_each": each,
                "requests_per_s": sum(r["requests_per_s"] for r in results.values()),
                "p99_ms": max(r["p99_ms"] or 0.0 for r in results.values()),
                "non_2xx": sum(r["non_2xx"] or 0 for r in results.values()),
                "peak_rss_mb": [peak_rss_mb(p.pid) for p in procs]}


def run(processes: int, seconds: int) -> dict[str, Any]:
    # One database and prefix for every round: the processes share them, as deployed.
    database, prefix = fresh_database(), f"motcua-bench-{uuid.uuid4().hex[:6]}."
    lua = MANY_LUA % (",".join(lua_string(b) for b in realistic_bodies()),
                      bearer("counter")["Authorization"])
    rounds = [tier(n, seconds, database, prefix, lua) for n in (1, processes, 1, processes)]
    one = [r for r in rounds if r["processes"] == 1]
    many = [r for r in rounds if r["processes"] == processes]
    return {"processes": processes, "seconds": seconds, "rounds": rounds,
            "one_requests_per_s": [r["requests_per_s"] for r in one],
            "many_requests_per_s": [r["requests_per_s"] for r in many],
            "ratio": (sum(r["requests_per_s"] for r in many)
                      / sum(r["requests_per_s"] for r in one)),
            "many_p99_ms": [r["p99_ms"] for r in many],
            "non_2xx": sum(r["non_2xx"] for r in rounds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=12)
    args = parser.parse_args()
    r = run(args.processes, args.seconds)
    for x in r["rounds"]:
        print(f"{x['processes']} process(es) × {x['connections_each']} connections: "
              f"{x['requests_per_s']:.0f} req/s, p99 {x['p99_ms']} ms, non-2xx {x['non_2xx']}")
    print(f"{args.processes} processes / 1 process = {r['ratio']:.2f}")
    save("intake_scaleout", r)


if __name__ == "__main__":
    main()
