"""All three services in one process, one port, one bus: the embedded default of `motcua up`."""

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from intake.app import IntakeComponent
from intake.settings import IntakeSettings
from metrics.app import MetricsComponent
from metrics.settings import MetricsSettings
from registry.calendar import WorkingCalendar, default_calendar_dir
from registry.catalogue import Catalogue
from routing.app import RoutingComponent
from routing.settings import RoutingSettings
from services.app import build_app
from services.bus import make_bus
from services.clock import Clock, system_clock
from services.component import Component


def create_embedded_app(
    *,
    intake: IntakeSettings,
    routing: RoutingSettings,
    metrics: MetricsSettings,
    clock: Clock = system_clock,
) -> FastAPI:
    registry = CollectorRegistry()
    bus = make_bus(intake)
    catalogue = Catalogue.load(intake.catalogue_dir)
    calendar = WorkingCalendar.load(default_calendar_dir())
    components: list[Component] = [
        IntakeComponent(intake, bus=bus, registry=registry, catalogue=catalogue,
                        calendar=calendar, clock=clock),
        RoutingComponent(routing, bus=bus, registry=registry, catalogue=catalogue, clock=clock),
        MetricsComponent(metrics, bus=bus, registry=registry, clock=clock),
    ]
    return build_app(title="motcua", components=components, bus=bus, registry=registry,
                     topic_prefix=intake.topic_prefix, max_body_bytes=intake.max_body_bytes,
                     settings=intake)


def settings_for(data_dir: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """The three services' settings from the environment, with shared overrides applied."""
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return {
        "intake": IntakeSettings(**overrides),
        "routing": RoutingSettings(**overrides),
        "metrics": MetricsSettings(**overrides),
    }
