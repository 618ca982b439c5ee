"""Run every benchmark with sizes this machine (2 cores) affords, then write the latest table to
docs/benchmarks.md (between its `bench:latest` markers; the rest of the page is kept).

Each benchmark runs in its own process and writes bench/results/<name>.json; the table is built
from those files, with the 1-minute load average before and after each one, because the figures
of a shared machine mean little without it. Needs the broker and PostgreSQL of scripts/kafka.sh
and scripts/postgres.sh, and wrk. Run: .venv/bin/python -m bench.run_all [--only projection]
[--table-only]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, clean_leftovers, machine
from bench.projection import KAFKA, PG

DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:latest:begin -->", "<!-- bench:latest:end -->"

# result name -> (bench module, arguments): sized to finish in about 20 minutes on 2 cores next
# to other work. Freshness runs at the goal's offered rate (1,000 cases/s ≈ 2,000 events/s) and
# at a rate intake sustains on this machine.
PLAN: dict[str, tuple[str, list[str]]] = {
    "intake_http": ("intake_http", ["--seconds", "10", "--connections", "64"]),
    "intake_scaleout": ("intake_scaleout", ["--processes", "2", "--seconds", "10"]),
    "projection": ("projection", ["--cases", "20000"]),
    "freshness": ("freshness", ["--rate", "1000", "--seconds", "30"]),
    "freshness_sustained": ("freshness", ["--rate", "100", "--seconds", "30", "--name",
                                          "freshness_sustained"]),
    "rebuild": ("rebuild", ["--sizes", "25000", "100000"]),
    "kpi_query": ("kpi_query", ["--sizes", "100000", "1000000", "10000000", "--queries", "200"]),
    "routing_catchup": ("routing_catchup", ["--cases", "20000", "80000"]),
}
# Run on request only (`--only rebuild_10m`): producing and rebuilding 10 million events takes
# about 25 minutes here. Its last result stays in the table until it is run again.
OCCASIONAL: dict[str, tuple[str, list[str]]] = {
    "rebuild_10m": ("rebuild", ["--sizes", "2270000", "--name", "rebuild_10m"]),
}
RUNNABLE = {**PLAN, **OCCASIONAL}
# Every benchmark of PLAN at the smallest sizes that still exercise its whole path (about two
# minutes in all): `--smoke`, run by the test suite (tests/bench) so that no benchmark rots
# between the runs that fill the table. Its figures mean nothing and go to a directory of
# their own, never to bench/results or the table in docs/benchmarks.md.
SMOKE: dict[str, tuple[str, list[str]]] = {
    "intake_http": ("intake_http", ["--seconds", "1", "--connections", "16", "--rounds", "1",
                                    "--batch-cases", "300"]),
    "intake_scaleout": ("intake_scaleout", ["--processes", "2", "--seconds", "1"]),
    "projection": ("projection", ["--cases", "300", "--rounds", "1"]),
    "freshness": ("freshness", ["--rate", "20", "--seconds", "3"]),
    "rebuild": ("rebuild", ["--sizes", "300", "600"]),
    "kpi_query": ("kpi_query", ["--sizes", "2000", "4000", "--queries", "10"]),
    "routing_catchup": ("routing_catchup", ["--cases", "300", "600"]),
}


def run(names: list[str], plan: dict[str, tuple[str, list[str]]] = RUNNABLE,
        results: Path = RESULTS) -> dict[str, dict[str, Any]]:
    py = str(ROOT / ".venv" / "bin" / "python")
    env = {**os.environ, "MOTCUA_BENCH_RESULTS": str(results)}
    loads: dict[str, dict[str, Any]] = {}
    for name in names:
        before = os.getloadavg()[0]
        started = time.monotonic()
        module, args = plan[name]
        print(f"== {name}: {module} {' '.join(args)} (load {before:.2f})", flush=True)
        proc = subprocess.run([py, "-m", f"bench.{module}", *args], cwd=ROOT, env=env,
                              check=False)
        loads[name] = {"load_before": before, "load_after": os.getloadavg()[0],
                       "seconds": time.monotonic() - started, "exit": proc.returncode}
    return loads


def _statuses(f: dict[str, Any]) -> str:
    by = f.get("answers_by_status")
    if not by:
        return ""
    return " (answers: " + ", ".join(f"{int(n):,} × {s}" for s, n in sorted(by.items())) + ")"


def _f(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _medians(result: dict[str, Any]) -> str:
    """How a bench that alternates with its baseline reports (intake_http, projection)."""
    return f", medians of {result['rounds']} alternated rounds" if result.get("rounds") else ""


def _cpu(figures: dict[str, Any], per: int = 1, unit: str = "a request") -> str:
    """The CPU behind a wrk run's rate (bench.intake_http.wrk_on), where it was measured."""
    if "server_cpu_us" not in figures:
        return ""
    db = figures.get("postgres_cpu_us")
    return (f"; CPU {unit}: {_f(figures['server_cpu_us'] / per)} µs"
            + (f" + PostgreSQL {_f(db / per)} µs" if db is not None else ""))


def rows(r: dict[str, dict[str, Any]]) -> list[list[str]]:
    out: list[list[str]] = []
    if (i := r.get("intake_http")) is not None:
        m, b = i["motcua_single"], i["baseline_single"]
        one = i.get("motcua_single_one_counter")
        medians = _medians(i)
        out.append([f"single-case intake `POST /v1/cases`, 64 connections ({i['mode']}{medians})",
                    "≥ 3,000 req/s, p99 ≤ 50 ms, ≥ 0.5 × baseline",
                    f"{_f(m['requests_per_s'])} req/s, p50 {_f(m['p50_ms'], 1)} ms, "
                    f"p99 {_f(m['p99_ms'], 1)} ms (loadgen bodies, 14 counters){_cpu(m)}"
                    + (f"; one counter: {_f(one['requests_per_s'])} req/s, p99 "
                       f"{_f(one['p99_ms'], 1)} ms" if one else ""),
                    f"bare FastAPI {_f(b['requests_per_s'])} req/s, p99 {_f(b['p99_ms'], 1)} ms"
                    f"{_cpu(b)}",
                    f"{i['ratio_single']:.2f}", "intake_http"])
        mb, bb = i["motcua_batch"], i["baseline_batch"]
        out.append([f"batch intake `POST /v1/events:batch` ({i['events_per_batch']:,} events a "
                    f"request, 8 connections{medians})",
                    "≥ 30,000 events/s",
                    f"{_f(i['motcua_batch_events_per_s'])} events/s, p99 {_f(mb['p99_ms'])} ms"
                    f"{_cpu(mb, i['events_per_batch'], 'an event')}",
                    f"bare FastAPI {_f(bb['requests_per_s'] * i['events_per_batch'])} events/s",
                    f"{i['ratio_batch']:.2f}", "intake_http"])
        if (wide := i.get("motcua_batch_wide")) is not None:
            out.append([f"batch intake, {i['connections']} connections ({i['batch_cases']:,} "
                        f"open cases, medians of {i['rounds']} runs after the others)",
                        "≥ 30,000 events/s",
                        f"{_f(i['motcua_batch_wide_events_per_s'])} events/s, p99 "
                        f"{_f(wide['p99_ms'])} ms{_cpu(wide, i['events_per_batch'], 'an event')}",
                        "–", "–", "intake_http"])
    if (x := r.get("intake_scaleout")) is not None:
        many = " / ".join(_f(v) for v in x["many_requests_per_s"])
        one = " / ".join(_f(v) for v in x["one_requests_per_s"])
        out.append([f"single-case intake, {x['processes']} intake processes on one database "
                    f"(64 connections in all)", "– (the goal is per process)",
                    f"{many} req/s, p99 "
                    f"{' / '.join(_f(v, 1) for v in x['many_p99_ms'])} ms",
                    f"one process {one} req/s", f"{x['ratio']:.2f}", "intake_scaleout"])
    if (p := r.get("projection")) is not None:
        rounds = _medians(p)
        out.append([f"projection, Kafka → PostgreSQL ({p['events']:,} {p['event_mix']} events, "
                    f"batch {p['batch_size']:,}{rounds})", "≥ 50,000 events/s; ≥ 0.5 × baseline",
                    f"{_f(p['projection_events_per_s'])} events/s; client CPU "
                    f"{_f(p.get('projection_cpu_us_per_event'), 1)} µs/event",
                    f"bare aiokafka consumer {_f(p['bare_consumer_events_per_s'])} events/s; "
                    f"{_f(p.get('bare_cpu_us_per_event'), 1)} µs/event",
                    f"{p['ratio']:.3f}", "projection"])
    for name in ("freshness", "freshness_sustained"):
        if (f := r.get(name)) is None:
            continue
        lo, idle = f["loaded_ms"], f["idle_ms"]
        out.append([f"freshness, three processes, offered {f['offered_cases_per_s']:,.0f} "
                    f"cases/s (≈ {f['offered_events_per_s_approx']:,.0f} events/s), "
                    f"{f['probes']} probes", "p50 ≤ 200 ms, p99 ≤ 1 s at 2,000 events/s",
                    f"p50 {_f(lo['p50'])} ms, p99 {_f(lo['p99'])} ms, max {_f(lo['max'])} ms; "
                    f"intake answered {_f(f.get('cases_answered_per_s'))} cases/s within the "
                    f"window{_statuses(f)}",
                    f"idle system p50 {_f(idle['p50'])} ms, p99 {_f(idle['p99'])} ms",
                    f"{f['ratio_p50_loaded_vs_idle']:.2f} (p50 loaded / idle)", name])
    f = r.get("freshness")
    if (b := r.get("rebuild")) is not None:
        how = "extrapolated" if b["ten_million_extrapolated"] else "measured"
        out.append([f"rebuild (largest log {b['largest_events']:,} events)",
                    "10 million events ≤ 5 min",
                    f"{_f(b['events_per_s'])} events/s → 10M in "
                    f"{b['ten_million_seconds'] / 60:.1f} min ({how})",
                    "bare aiokafka consumer "
                    f"{_f(b['sizes'][str(b['largest_events'])]['bare_consumer_events_per_s'])}"
                    " events/s", f"{b['ratio']:.3f}", "rebuild"])
    if (t := r.get("rebuild_10m")) is not None:
        size = t["sizes"][str(t["largest_events"])]
        out.append([f"rebuild, measured at {t['largest_events']:,} events ({t['at'][:10]})",
                    "10 million events ≤ 5 min",
                    f"{_f(t['events_per_s'])} events/s, {size['rebuild_seconds'] / 60:.1f} min; "
                    f"peak RSS {t['peak_rss_mb']:.0f} MB",
                    f"bare aiokafka consumer {_f(size['bare_consumer_events_per_s'])} events/s",
                    f"{t['ratio']:.3f}", "rebuild_10m"])
    if (k := r.get("kpi_query")) is not None:
        sizes = k["sizes"]
        worst = "; ".join(f"{int(n):,} cases p99 {_f(s['p99_max_ms'], 1)} ms "
                          f"(p50 {_f(s['p50_median_ms'], 1)})" for n, s in sizes.items())
        first = next(iter(sizes))
        out.append(["KPI query, every scope × period (worst cell)",
                    "p99 ≤ 20 ms at 10M cases, flat from 100k",
                    worst, f"{int(first):,} cases p99 {_f(sizes[first]['p99_max_ms'], 1)} ms",
                    f"{k['ratio_p99_largest_vs_smallest']:.2f} (largest / smallest)",
                    "kpi_query"])
    mem = []
    if f is not None:
        mem += [f"{s} {v:.0f} MB" for s, v in f["peak_rss_mb"].items()]
    if b is not None:
        mem.append(f"rebuild {b['peak_rss_mb']:.0f} MB")
    if mem:
        out.append(["memory, peak RSS (freshness run; rebuild run)", "each ≤ 300 MB",
                    ", ".join(mem), "–", "–", "freshness"])
    if (c := r.get("routing_catchup")) is not None:
        runs = c["runs"]
        out.append(["memory, routing catching up a backlog (as after an outage)",
                     "≤ 300 MB, flat as history grows",
                     " / ".join(f"{x['events']:,} events behind: {x['peak_rss_mb']:.0f} MB "
                                f"at {_f(x['events_per_s'])} events/s" for x in runs),
                     "the smallest backlog", f"{c['ratio_rss_largest_vs_smallest']:.2f} "
                     "(RSS largest / smallest)", "routing_catchup"])
    return out


def table(results: dict[str, dict[str, Any]], loads: dict[str, dict[str, Any]]) -> str:
    m = machine()
    lines = [BEGIN, "## Latest run", "",
             f"{time.strftime('%Y-%m-%d %H:%M %Z')} on {m['cpus']} × {m['cpu']}, "
             f"{m['memory']} memory, Python {m['python']}, {m['platform']}. Sizes: "
             "`bench/run_all.py` PLAN. Load is the 1-minute load average before → after "
             "each benchmark: this machine is shared, so ratios against the in-run baseline "
             "say more than absolute figures.", "",
             "| figure | goal | measured | baseline (same run) | ratio | load |",
             "|---|---|---|---|---|---|"]
    for figure, goal, measured, baseline, ratio, name in rows(results):
        ld = loads.get(name)
        load = f"{ld['load_before']:.1f} → {ld['load_after']:.1f}" if ld else "–"
        lines.append(f"| {figure} | {goal} | {measured} | {baseline} | {ratio} | {load} |")
    failed = [n for n, ld in loads.items() if ld["exit"] != 0]
    if failed:
        lines += ["", f"Failed in this run (see their output): {', '.join(failed)}."]
    lines.append(END)
    return "\n".join(lines)


def write_doc(block: str) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else (
        "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + block + tail, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="+", choices=list(RUNNABLE), default=list(PLAN))
    parser.add_argument("--table-only", action="store_true",
                        help="rebuild the table from bench/results without running anything")
    parser.add_argument("--smoke", type=Path, metavar="DIR",
                        help="every benchmark at the smallest sizes, results into DIR, the table "
                        "printed (nothing cleaned, bench/results and the docs untouched)")
    args = parser.parse_args()
    if args.smoke is not None:
        smoke(args.smoke)
        return
    loads_file = RESULTS / "run_all_loads.json"
    loads: dict[str, dict[str, Any]] = (
        json.loads(loads_file.read_text()) if loads_file.exists() else {})
    if not args.table_only:
        topics, databases = clean_leftovers(KAFKA, PG)
        print(f"removed {topics} topics and {databases} databases of earlier runs", flush=True)
        loads.update(run(args.only))
        RESULTS.mkdir(parents=True, exist_ok=True)
        loads_file.write_text(json.dumps(loads, indent=2) + "\n")
    results = {p.stem: json.loads(p.read_text()) for p in RESULTS.glob("*.json")
               if p.stem in RUNNABLE}
    write_doc(table(results, loads))
    if any(ld["exit"] != 0 for n, ld in loads.items() if n in args.only):
        sys.exit(1)


def smoke(results: Path) -> None:
    """Run SMOKE into `results` and print its table; exit 1 if a benchmark failed. Leftovers
    are not cleaned first: a smoke run shares the broker and PostgreSQL with the test suite."""
    loads = run(list(SMOKE), SMOKE, results)
    found = {p.stem: json.loads(p.read_text()) for p in results.glob("*.json")
             if p.stem in SMOKE}
    print(table(found, loads))
    if any(ld["exit"] != 0 for ld in loads.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
