"""Every benchmark run end to end at the smallest sizes (`bench.run_all --smoke`), on the real
broker and PostgreSQL, so that none of them rots between the runs that fill the table in
docs/benchmarks.md. The figures are too small to mean anything about speed; what is checked is
that each benchmark measured what it says: every event it produced was consumed or rebuilt,
every request answered 2xx, every ratio is the figure over its baseline, and the table has a
row for each figure.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.run_all import SMOKE

ROOT = Path(__file__).resolve().parents[2]


def _written() -> dict[str, int]:
    """What a full run writes, and when it was last written."""
    paths = [ROOT / "docs" / "benchmarks.md", *(ROOT / "bench" / "results").glob("*.json")]
    return {str(p): p.stat().st_mtime_ns for p in paths if p.exists()}


@pytest.fixture(scope="module")
def smoke(kafka_bootstrap: str, pg_admin_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, bool]:
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk missing: scripts/test.sh installs Debian's package")
        pytest.skip("wrk not installed (scripts/test.sh installs it)")
    results = tmp_path_factory.mktemp("bench-results")
    before = _written()
    env = {**os.environ, "MOTCUA_BENCH_KAFKA": kafka_bootstrap,
           "MOTCUA_BENCH_DATABASE_URL": pg_admin_url}
    out = subprocess.run([sys.executable, "-m", "bench.run_all", "--smoke", str(results)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                         check=False)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    found = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in results.glob("*.json")}
    return found, out.stdout, _written() == before


def test_every_benchmark_wrote_its_results(smoke: tuple[dict[str, Any], str, bool]) -> None:
    results = smoke[0]
    assert sorted(results) == sorted(SMOKE)
    for name, result in results.items():
        assert result["benchmark"] == name
        assert result["machine"]["cpus"] >= 1


def test_the_table_and_its_results_are_left_alone(smoke: tuple[dict[str, Any], str, bool]
                                                  ) -> None:
    _, stdout, untouched = smoke
    assert untouched, "a smoke run wrote bench/results or docs/benchmarks.md"
    assert "docs/benchmarks.md" not in stdout


def test_intake_answered_every_request(smoke: tuple[dict[str, Any], str, bool]) -> None:
    r = smoke[0]["intake_http"]
    for key in ("motcua_single", "baseline_single", "motcua_batch", "baseline_batch",
                "motcua_batch_wide", "motcua_single_one_counter"):
        assert r[key]["non_2xx"] == 0, key
        assert r[key]["requests_per_s"] > 0, key
        assert r[key]["p50_ms"] <= r[key]["p99_ms"], key
        # The CPU behind the rate: the server's own, and for intake PostgreSQL's too.
        assert r[key]["server_cpu_us"] > 0, key
        assert (r[key].get("postgres_cpu_us", 0) > 0) == key.startswith("motcua"), key
    assert r["ratio_single"] == pytest.approx(
        r["motcua_single"]["requests_per_s"] / r["baseline_single"]["requests_per_s"], rel=1e-6)
    assert r["motcua_batch_events_per_s"] == pytest.approx(
        r["motcua_batch"]["requests_per_s"] * r["events_per_batch"])
    assert r["motcua_batch_wide_events_per_s"] == pytest.approx(
        r["motcua_batch_wide"]["requests_per_s"] * r["events_per_batch"])
    assert r["batch_cases"] == 300
    scale = smoke[0]["intake_scaleout"]
    assert scale["ratio"] == pytest.approx(
        sum(scale["many_requests_per_s"]) / sum(scale["one_requests_per_s"]), rel=1e-6)
    assert scale["non_2xx"] == 0
    assert [run["processes"] for run in scale["rounds"]] == [1, 2, 1, 2]


def test_the_projection_consumed_the_whole_log(smoke: tuple[dict[str, Any], str, bool]) -> None:
    p = smoke[0]["projection"]
    # 300 cases of realistic traffic: a receipt each, and the events that follow it.
    assert p["events"] > 300
    (run,) = p["runs"]
    assert run["ratio"] == pytest.approx(
        run["projection_events_per_s"] / run["bare_consumer_events_per_s"])
    assert run["projection_cpu_us_per_event"] > 0 < run["bare_cpu_us_per_event"]
    # The broker read the log once, untimed, before the round (a cold broker flatters it).
    assert p["warm_up_bare_events_per_s"] > 0


def test_the_rebuild_applied_every_event_once(smoke: tuple[dict[str, Any], str, bool]) -> None:
    b = smoke[0]["rebuild"]
    assert len(b["sizes"]) == 2
    for size in b["sizes"].values():
        assert size["events"] == size["records"] > 0
        assert f"{size['events']} events applied, 0 duplicates skipped, 0 undecodable" \
            in size["summary"]
    largest = b["sizes"][str(b["largest_events"])]
    assert b["ratio"] == pytest.approx(
        largest["events_per_s"] / largest["bare_consumer_events_per_s"])
    assert b["ten_million_seconds"] == pytest.approx(10_000_000 / b["events_per_s"], rel=1e-3)


def test_freshness_probed_every_case_answered(smoke: tuple[dict[str, Any], str, bool]) -> None:
    f = smoke[0]["freshness"]
    assert f["probes"] > 0
    assert set(f["answers_by_status"]) == {"201"}
    for figures in (f["loaded_ms"], f["idle_ms"]):
        assert 0 < figures["p50"] <= figures["p99"] <= figures["max"]
    assert set(f["peak_rss_mb"]) == {"intake", "routing", "metrics"}


def test_kpi_queries_cover_every_scope_and_period(smoke: tuple[dict[str, Any], str, bool]) -> None:
    k = smoke[0]["kpi_query"]
    assert len(k["sizes"]) == 2
    for size in k["sizes"].values():
        cells = size["latency_ms"]
        assert {c.split("/")[1] for c in cells} == {"day", "month", "quarter", "year"}
        assert all(0 < c["p50"] <= c["p99"] for c in cells.values())
        assert size["p99_max_ms"] == max(c["p99"] for c in cells.values())


def test_routing_caught_up_each_backlog(smoke: tuple[dict[str, Any], str, bool]) -> None:
    c = smoke[0]["routing_catchup"]
    events = [run["events"] for run in c["runs"]]
    assert len(events) == 2 and 0 < events[0] < events[1]
    assert all(run["peak_rss_mb"] > 0 for run in c["runs"])


def test_the_table_has_a_row_for_each_figure(smoke: tuple[dict[str, Any], str, bool]) -> None:
    stdout = smoke[1]
    table = stdout[stdout.index("<!-- bench:latest:begin -->"):]
    for figure in ("single-case intake `POST /v1/cases`", "batch intake `POST",
                   "batch intake, 16 connections (300 open cases",
                   "single-case intake, 2 intake processes", "projection, Kafka → PostgreSQL",
                   "freshness, three processes",
                   "rebuild (largest log", "KPI query", "memory, peak RSS",
                   "memory, routing catching up"):
        assert f"| {figure}" in table, figure
    assert "Failed in this run" not in table
    assert "CPU a request: " in table and "CPU an event: " in table
