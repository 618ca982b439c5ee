"""Intake's outbox relay as a process of its own (`motcua relay intake`), which `motcua intake`
starts as its child when `relay_process` is set (services/relay_process.py). Only what the
relay needs is imported here: the child has no HTTP app to load."""

import asyncio
import os
import sys

from intake import models
from intake.settings import IntakeSettings
from services.bus import make_bus
from services.db import make_engine
from services.logging import configure_logging
from services.outbox import Relay
from services.relay_process import serve
from services.runtime import tune_gc

# Not through motcua.cli, whose parser imports every command (30 MB more for the child).
RELAY_COMMAND = (sys.executable, "-m", "intake.relay")


def relay_env(settings: IntakeSettings) -> dict[str, str]:
    """The relay process's environment: the parent's, with the parent's database, brokers and
    topic prefix (which a caller may have set in code rather than in the environment)."""
    assert settings.database_url and settings.kafka_bootstrap_servers, "checked by the settings"
    return {"INTAKE_DATABASE_URL": settings.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "MOTCUA_TOPIC_PREFIX": settings.topic_prefix}


async def run_relay_process(settings: IntakeSettings | None = None) -> None:
    """`motcua relay intake`: intake's outbox relay, as the child process `motcua intake`
    starts when `relay_process` is set (services/relay_process.py)."""
    settings = settings or IntakeSettings()
    engine = make_engine(settings.resolved_database_url("intake"), pool_size=2)
    bus = make_bus(settings)
    await bus.start()
    try:
        relay = Relay(models.OUTBOX, engine, bus, topic_prefix=settings.topic_prefix,
                      poll_s=settings.relay_poll_seconds)
        await serve(relay, engine, models.OUTBOX)
    finally:
        await bus.close()
        engine.dispose()


def main() -> None:
    """`motcua relay intake`, or `python -m intake.relay` as intake starts it."""
    configure_logging(os.environ.get("MOTCUA_LOG_LEVEL", "INFO"))
    settings = IntakeSettings()
    tune_gc(settings.gc_young_threshold)
    try:
        import uvloop
    except ImportError:  # uvicorn's [standard] extra brings it; the relay runs without too
        asyncio.run(run_relay_process(settings))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run_relay_process(settings))


if __name__ == "__main__":
    main()
