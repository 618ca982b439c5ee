"""The Compose stack and the image, checked with a real Compose parser (no engine needed)."""

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("intake", "routing", "metrics")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    tool = shutil.which("docker-compose")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose missing: scripts/test.sh installs Debian's package")
        pytest.skip("docker-compose not installed (scripts/test.sh installs it)")
    out = subprocess.run([tool, "-f", str(ROOT / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr
    parsed: dict[str, Any] = yaml.safe_load(out.stdout)
    return parsed


def test_the_whole_stack_is_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"kafka", "kafka-topics", "postgres", *APP_SERVICES,
                             "prometheus", "grafana", "gateway"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_services_wait_for_their_dependencies_and_report_health(
    compose: dict[str, Any],
) -> None:
    for name in APP_SERVICES:
        svc = compose["services"][name]
        assert svc["command"][0] == name
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert svc["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])
        assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_topics_are_created_with_partitions_and_retention(compose: dict[str, Any]) -> None:
    script = " ".join(compose["services"]["kafka-topics"]["command"])
    for topic in ("motcua.cases.v1", "motcua.routing.v1", "motcua.deadletter.v1"):
        assert f"--topic {topic} --partitions" in script
    assert "retention.ms=-1" in script  # the case log is kept: rebuilds replay it


def test_mounted_monitoring_config_exists(compose: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana", "gateway"):
        for volume in compose["services"][name]["volumes"]:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith(("/", ".")):
                assert Path(source).exists(), f"{name} mounts missing {source}"


def test_image_is_slim_non_root_with_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
