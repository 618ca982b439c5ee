"""Real Prometheus tooling for the tests: promtool, scrapes of running stacks, PromQL names."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import case_body
from tests.harness import Stack

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# What Prometheus itself adds to every scrape, and may therefore appear in a query.
BUILT_IN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_FUNCTION_OR_KEYWORD = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
    # Aggregation operators, which may be followed by `by (…)` instead of a parenthesis.
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: scripts/test.sh installs Debian's prometheus package")
        pytest.skip("promtool not installed (scripts/test.sh installs Debian's prometheus)")
    return path


def run_promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], input=stdin, capture_output=True, text=True,
                          check=False, cwd=ROOT)


def busy_scrape(stack: Stack) -> str:
    """/metrics of a stack that has done some work: cases received in two provinces, an event,
    KPI reads (so every labelled family has children)."""
    for agency in ("000.00.20.H56", "000.00.02.H05"):
        r = stack.client.post("/v1/cases", json=case_body(
            agency_code=agency, channel="online", online_level="full", received_at=None))
        assert r.status_code == 201, r.text
    stack.settled()
    assert stack.client.get("/v1/kpis").status_code == 200
    r = stack.client.get("/metrics")
    assert r.status_code == 200
    return r.text


def names_in_scrape(text: str) -> set[str]:
    """Every family and sample name a scrape exposes (counters with and without _total)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (label matchers, groupings, strings, ranges and
    function names removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = m.group(0)
        after = text[m.end():].lstrip()
        if after.startswith("(") or word.lower() in _FUNCTION_OR_KEYWORD:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names
