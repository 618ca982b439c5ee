"""The monitoring pack in deploy/: Prometheus config, recording and alert rules (checked and
unit-tested with promtool), Grafana provisioning and dashboards whose every query is valid
PromQL over metrics a real scrape of motcua exposes."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import Stack, StackFactory
from tests.metrics.prom import (
    BUILT_IN,
    DEPLOY,
    busy_scrape,
    metric_names,
    names_in_scrape,
    run_promtool,
)

RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
# What a Grafana variable or macro stands for when the query is checked.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$province": "H56",
                "$kpi": "online_share", "$agency": "000.00.20.H56"}


def rules() -> list[dict[str, Any]]:
    return [r for path in RULES for g in yaml.safe_load(path.read_text())["groups"]
            for r in g["rules"]]


def recorded() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def prometheus_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for panel in board["panels"]:
        for t in panel.get("targets", []):
            if t.get("datasource", {}).get("type") == "prometheus":
                out.append((panel["title"], t["expr"]))
    for v in board.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", v["query"]["query"])
            assert inner, v
            out.append((f"variable {v['name']}", inner.group(1)))
    return out


def substitute(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


@pytest.fixture(scope="module")
def scraped_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Names a real scrape of the embedded stack exposes (with a plan target for this year,
    so the target gauge is there too)."""
    from datetime import datetime

    from tests.harness import start_stack

    plans = tmp_path_factory.mktemp("plans")
    (plans / "p.json").write_text(json.dumps({
        "id": "p", "title": "t", "province": "H56", "source": {"document": "d"},
        "targets": [{"kpi": "online_share", "scope": "province:H56",
                     "years": [datetime.now().year], "threshold": 0.5}]}))
    stack = start_stack(data_dir=tmp_path_factory.mktemp("stack"), kafka=None,
                        database_url=None, topic_prefix="rules.", plans_dir=plans)
    try:
        return names_in_scrape(busy_scrape(stack)) | BUILT_IN
    finally:
        stack.close()


def test_prometheus_config_and_rules_pass_promtool_check() -> None:
    assert RULES and RULE_TESTS
    config = run_promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    assert f"{len(RULES)} rule files found" in config.stdout
    checked = run_promtool("check", "rules", *map(str, RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(path: Path) -> None:
    result = run_promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_can_fail(tmp_path: Path) -> None:
    """The unit tests are checked by promtool, not merely parsed: a wrong expectation fails."""
    source = RULE_TESTS[0]
    broken = source.read_text().replace("value: 0.125", "value: 0.5", 1)
    assert broken != source.read_text()
    (tmp_path / "rules").mkdir()
    for rule_file in RULES:
        (tmp_path / "rules" / rule_file.name).write_text(rule_file.read_text())
    (tmp_path / "tests").mkdir()
    copy = tmp_path / "tests" / source.name
    copy.write_text(broken)
    result = run_promtool("test", "rules", str(copy))
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr


def test_every_alert_named_in_the_issue_exists() -> None:
    alerts = {r["alert"] for r in rules() if "alert" in r}
    assert {"MotcuaKpiBehindTarget", "MotcuaOverdueBacklogGrowing", "MotcuaConsumerLagHigh",
            "MotcuaProjectionStalled"} <= alerts
    tested = "\n".join(p.read_text() for p in RULE_TESTS)
    untested = sorted(a for a in alerts if f"alertname: {a}" not in tested)
    assert not untested, f"alerts without a promtool unit test: {untested}"


def test_rules_read_metrics_a_real_scrape_exposes(scraped_names: set[str]) -> None:
    known = scraped_names | recorded()
    for rule in rules():
        missing = metric_names(rule["expr"]) - known
        assert not missing, (rule.get("record") or rule.get("alert"), missing)


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "motcua.yml").read_text())
    uids = {d["uid"]: d for d in sources["datasources"]}
    assert uids["prometheus"]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "motcua.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert {p.stem for p in DASHBOARDS} == {"motcua-kpis", "motcua-flow", "motcua-overdue",
                                            "motcua-health"}
    for path in DASHBOARDS:
        board = json.loads(path.read_text("utf-8"))
        assert board["uid"] == path.stem and board["panels"]
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in board["panels"]:
            used = [panel.get("datasource")] + [t.get("datasource") for t in
                                                panel.get("targets", [])]
            for ds in filter(None, used):
                assert ds["uid"] in uids, (path.name, panel["title"], ds)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_are_valid_promql_over_scraped_metrics(
    path: Path, scraped_names: set[str], tmp_path: Path,
) -> None:
    board = json.loads(path.read_text("utf-8"))
    queries = prometheus_queries(board)
    assert queries
    known = scraped_names | recorded()
    for title, expr in queries:
        missing = metric_names(expr) - known
        assert not missing, (path.name, title, missing)
    # promtool parses each query as it parses a rule: a syntax error fails here.
    as_rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": substitute(expr)}
        for i, (_, expr) in enumerate(queries)]}]}
    file = tmp_path / "queries.yml"
    file.write_text(yaml.safe_dump(as_rules))
    result = run_promtool("check", "rules", str(file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_agency_panel_reads_the_kpi_api(stack_factory: StackFactory) -> None:
    """Per-agency KPIs come from GET /v1/kpis (agency is not a Prometheus label): the panel's
    request is answered, with the columns it shows."""
    stack: Stack = stack_factory("embedded", "sqlite")
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "motcua-kpis.json").read_text())
    targets = [t for p in board["panels"] for t in p.get("targets", [])
               if t["datasource"]["uid"] == "motcua-api"]
    assert targets
    for t in targets:
        params = {p["key"]: substitute(p["value"]) for p in t["url_options"]["params"]}
        r = stack.client.get(t["url"], params=params)
        assert r.status_code == 200, r.text
        rows = r.json()[t["root_selector"]]
        assert rows
        columns = {c["selector"] for c in t["columns"]}
        assert columns - {"target", "gap", "status"} <= set(rows[0])
