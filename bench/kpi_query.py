"""Bench 5: KPI query latency (p50/p99) for every scope and period kind, at 100k, 1M and 10M
cases of history, through the real HTTP API of the metrics service on PostgreSQL.

History is loaded straight into the projection's tables: counters are derived here from
synthetic cases with the same attribution rules (a case counts for all, its province, agency,
field and procedure, on the periods the projection stores: its day and month), then
bulk-copied. The query path is the one production uses: a quarter or a year adds up its months.
Run: .venv/bin/python -m bench.kpi_query [--sizes 100000 1000000]
"""

import argparse
import random
import sys
import time
import uuid
from collections import Counter
from datetime import date, timedelta
from typing import Any

import httpx
import psycopg

from bench.common import ROOT, auth_env, bearer, free_port, quantiles, save, server
from bench.projection import PG
from metrics.periods import periods_of
from registry.catalogue import Catalogue

NAMES = ("received", "received_online", "received_full", "received_postal", "transfers",
         "transfers_electronic", "payments", "payments_online", "resolved", "resolved_online",
         "resolved_on_time", "resolved_digitised", "returned", "returned_post")


def counters(n_cases: int, seed: int = 3, years: int = 3) -> Counter[tuple[str, str, str]]:
    rng = random.Random(seed)
    cat = Catalogue.load()
    agencies = sorted(cat.agencies.values(), key=lambda a: a.code)
    procs = sorted(cat.procedures.values(), key=lambda p: p.code)
    start = date(2024, 1, 1)
    days = [start + timedelta(days=i) for i in range(365 * years)]
    per_day_scope: Counter[tuple[str, date]] = Counter()
    for _ in range(n_cases):
        a = agencies[rng.randrange(len(agencies))]
        p = procs[rng.randrange(len(procs))]
        d = days[rng.randrange(len(days))]
        for scope in ("all", f"province:{a.province}", f"agency:{a.code}",
                      f"field:{p.field_code}", f"procedure:{p.code}"):
            per_day_scope[(scope, d)] += 1
    out: Counter[tuple[str, str, str]] = Counter()
    for (scope, d), n in per_day_scope.items():
        for period in periods_of(d):
            for i, name in enumerate(NAMES):
                # Each counter is a share of the cases: enough to give every row a value.
                out[(name, scope, period)] += max(1, n * (len(NAMES) - i) // len(NAMES))
    return out


def load(url: str, rows: Counter[tuple[str, str, str]]) -> None:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        with conn.cursor().copy(
            "COPY metrics_counters (name, scope, period, value) FROM STDIN"
        ) as copy:
            for (name, scope, period), value in rows.items():
                copy.write_row((name, scope, period, value))
        conn.execute("ANALYZE metrics_counters")


def measure(base: str, scopes: dict[str, list[str]], queries: int) -> dict[str, Any]:
    rng = random.Random(5)
    period_kinds = {"day": lambda: f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    "month": lambda: f"2025-{rng.randint(1, 12):02d}",
                    "quarter": lambda: f"2025-Q{rng.randint(1, 4)}", "year": lambda: "2025"}
    out: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=10, headers=bearer("portal")) as client:
        for kind, values in scopes.items():
            for pkind, make in period_kinds.items():
                samples = []
                for _ in range(queries):
                    params = {"scope": rng.choice(values), "period": make()}
                    t = time.perf_counter()
                    r = client.get("/v1/kpis", params=params)
                    samples.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, r.text
                out[f"{kind}/{pkind}"] = quantiles(samples)
    return out


def run(sizes: list[int], queries: int) -> dict[str, Any]:
    cat = Catalogue.load()
    scopes = {
        "all": ["all"],
        "province": sorted({f"province:{a.province}" for a in cat.agencies.values()}),
        "agency": sorted(f"agency:{a.code}" for a in cat.agencies.values()),
        "field": sorted({f"field:{p.field_code}" for p in cat.procedures.values()}),
        "procedure": sorted(f"procedure:{p.code}" for p in cat.procedures.values()),
    }
    py = str(ROOT / ".venv" / "bin" / "python")
    result: dict[str, Any] = {"queries_per_cell": queries, "sizes": {}}
    for n in sizes:
        name = f"motcua_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG.rsplit("/", 1)[0] + "/" + name
        port = free_port()
        env = {"METRICS_DATABASE_URL": url, "MOTCUA_LOG_LEVEL": "WARNING",
               "KAFKA_BOOTSTRAP_SERVERS": "", "MOTCUA_DATA_DIR": f"/tmp/{name}", **auth_env()}
        with server([py, "-m", "motcua.cli", "metrics", "--port", str(port)],
                    f"http://127.0.0.1:{port}/readyz", env=env):
            t = time.perf_counter()
            rows = counters(n)
            load(url, rows)
            print(f"{n:>10} cases: {len(rows)} counter rows loaded in "
                  f"{time.perf_counter() - t:.1f}s", file=sys.stderr)
            cells = measure(f"http://127.0.0.1:{port}", scopes, queries)
        result["sizes"][str(n)] = {"counter_rows": len(rows), "latency_ms": cells,
                                   "p99_max_ms": max(c["p99"] for c in cells.values()),
                                   "p50_median_ms": sorted(c["p50"] for c in cells.values())[
                                       len(cells) // 2]}
    first, last = str(sizes[0]), str(sizes[-1])
    result["ratio_p99_largest_vs_smallest"] = (result["sizes"][last]["p99_max_ms"]
                                              / result["sizes"][first]["p99_max_ms"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    r = run(args.sizes, args.queries)
    for n, s in r["sizes"].items():
        print(f"{int(n):>10} cases  {s['counter_rows']:>9} rows  p50 (median cell) "
              f"{s['p50_median_ms']:.2f} ms  p99 (worst cell) {s['p99_max_ms']:.2f} ms")
    print(f"p99 ratio largest/smallest history: {r['ratio_p99_largest_vs_smallest']:.2f}")
    save("kpi_query", r)


if __name__ == "__main__":
    main()
