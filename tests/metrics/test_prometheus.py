"""/metrics as Prometheus scrapes it: `promtool check metrics` clean on real scrapes of the
embedded stack and of each service alone; names and units by the conventions; label sets
bounded (no case, citizen or agency labels); KPI gauges beside their plan targets."""

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.clock import LOCAL_TZ
from tests.harness import Stack, StackFactory, wait_ready
from tests.metrics.prom import busy_scrape, run_promtool

# Every label any motcua metric may carry, each with a bounded set of values (docs/monitoring.md).
ALLOWED_LABELS = {"kpi", "province", "group", "topic", "service", "type", "channel", "method",
                  "writer", "route", "status", "le"}
CASE_CODE = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}-\d{6}-\d{4}")
AGENCY_CODE = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}")


@pytest.fixture
def stack(stack_factory: StackFactory, tmp_path: Path) -> Stack:
    plans = tmp_path / "plans"
    plans.mkdir()
    year = datetime.now(LOCAL_TZ).year
    (plans / "thanh-hoa.json").write_text(json.dumps({
        "id": "thanh-hoa", "title": "Kế hoạch", "province": "H56", "source": {"document": "KH"},
        "targets": [
            {"kpi": "online_share", "scope": "province:H56", "years": [year], "threshold": 0.5},
            # Another plan's target for another year, and a field target: not exported.
            {"kpi": "online_share", "scope": "province:H56", "years": [year - 1],
             "threshold": 0.9},
            {"kpi": "satisfaction_rate", "scope": "province-field:H56/land", "years": [year],
             "threshold": 0.85},
        ]}), encoding="utf-8")
    return stack_factory("embedded", "sqlite", plans_dir=plans)


def assert_promtool_clean(text: str) -> None:
    result = run_promtool("check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


def samples(text: str) -> Iterator[tuple[str, str, dict[str, str], float]]:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            yield family.type, s.name, s.labels, s.value


def test_embedded_scrape_is_promtool_clean(stack: Stack) -> None:
    text = busy_scrape(stack)
    assert_promtool_clean(text)
    # The families the issue names are all there.
    for name in ("motcua_intake_cases_received_total", "motcua_intake_events_recorded_total",
                 "motcua_consumer_lag_messages", "motcua_metrics_projection_freshness_seconds",
                 "motcua_http_request_duration_seconds", "motcua_kpi_value", "motcua_kpi_target"):
        assert f"# TYPE {name} " in text, name


def test_each_service_alone_is_promtool_clean(tmp_path: Path) -> None:
    from intake.app import create_app as intake_app
    from intake.settings import IntakeSettings
    from metrics.app import create_app as metrics_app
    from metrics.settings import MetricsSettings
    from routing.app import create_app as routing_app
    from routing.settings import RoutingSettings

    apps: list[Any] = [
        intake_app(IntakeSettings(data_dir=tmp_path / "i", kafka_bootstrap_servers=None,
                                  database_url=None, topic_prefix="alone.")),
        routing_app(RoutingSettings(data_dir=tmp_path / "r", kafka_bootstrap_servers=None,
                                    database_url=None, topic_prefix="alone.")),
        metrics_app(MetricsSettings(data_dir=tmp_path / "m", kafka_bootstrap_servers=None,
                                    database_url=None, topic_prefix="alone.")),
    ]
    for app in apps:
        with TestClient(app) as client:
            wait_ready(lambda c=client: c.get("/readyz"))  # type: ignore[misc]
            client.get("/healthz")
            text = client.get("/metrics").text
            assert "motcua_http_request_duration_seconds" in text
            assert_promtool_clean(text)


def test_names_units_and_labels_follow_the_conventions(stack: Stack) -> None:
    text = busy_scrape(stack)
    families = list(text_string_to_metric_families(text))
    assert families
    for family in families:
        assert family.name.startswith("motcua_"), family.name
        assert re.fullmatch(r"[a-z_:][a-z0-9_:]*", family.name), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name  # base unit: seconds
        # No unit Prometheus would want in its base form instead.
        assert not re.search(r"_(milliseconds|ms|minutes|hours|percent)($|_)", family.name)
    for _, name, labels, _ in samples(text):
        assert set(labels) <= ALLOWED_LABELS, (name, labels)
        for value in labels.values():
            assert not CASE_CODE.search(value) and not AGENCY_CODE.search(value), (name, value)
    # Route labels are templates, never raw paths with a case code in them.
    routes = {labels["route"] for _, _, labels, _ in samples(text) if "route" in labels}
    assert "/v1/cases/{case_code}" in routes or "/v1/cases" in routes


def test_kpi_gauges_sit_beside_this_years_plan_targets(stack: Stack) -> None:
    text = busy_scrape(stack)
    got = {(name, labels.get("kpi"), labels.get("province")): value
           for _, name, labels, value in samples(text) if name.startswith("motcua_kpi_")}
    assert got[("motcua_kpi_target", "online_share", "H56")] == 0.5
    targets = {k for k in got if k[0] == "motcua_kpi_target"}
    # Only province-wide targets of this year: the field target and last year's are not there.
    assert targets == {("motcua_kpi_target", "online_share", "H56")}
    assert got[("motcua_kpi_value", "online_share", "H56")] == 1.0
    assert got[("motcua_kpi_numerator", "received", "H05")] == 1
    provinces = {k[2] for k in got}
    assert provinces == {"all", "H05", "H56"}  # no province-field:H56/… leaking in


def test_projected_events_are_counted_by_type_and_their_freshness_observed(
        stack: Stack) -> None:
    text = busy_scrape(stack)  # two cases received, and what routing recorded on them
    got = {(name, labels.get("type"), labels.get("le")): value
           for _, name, labels, value in samples(text)
           if name.startswith(("motcua_metrics_events_projected",
                               "motcua_metrics_projection_freshness_seconds"))}
    by_type = {k[1]: v for k, v in got.items() if k[0] == "motcua_metrics_events_projected_total"}
    assert by_type["received"] == 2
    projected = sum(by_type.values())
    # Every projected event observed once, each within a minute of being recorded.
    assert got[("motcua_metrics_projection_freshness_seconds_count", None, None)] == projected
    assert got[("motcua_metrics_projection_freshness_seconds_bucket", None, "+Inf")] == projected
    assert got[("motcua_metrics_projection_freshness_seconds_bucket", None, "60.0")] == projected
    assert 0 < got[("motcua_metrics_projection_freshness_seconds_sum", None, None)] < 60 * projected
