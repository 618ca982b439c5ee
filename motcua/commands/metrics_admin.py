"""`motcua metrics rebuild`: rebuild the KPI projection from the case log.

Settings come from the environment, as for the services (KAFKA_BOOTSTRAP_SERVERS or the
embedded bus in MOTCUA_DATA_DIR, METRICS_DATABASE_URL / DATABASE_URL, MOTCUA_TOPIC_PREFIX).
Stop the metrics service (or `motcua up`) first: see metrics/rebuild.py for why.
"""

import argparse
import asyncio
import sys
from typing import Any

from metrics.rebuild import RebuildError, RebuildReport, rebuild
from metrics.settings import MetricsSettings
from motcua.console import Progress
from services.runtime import tune_gc


def register(sub: Any) -> None:
    # `motcua metrics` alone runs the service (motcua.commands.run); with the `rebuild`
    # action it administers the projection instead.
    parser = sub.choices.get("metrics")
    if parser is None:
        parser = sub.add_parser("metrics", help="run or administer the metrics service")
    parser.add_argument("action", nargs="?", choices=["rebuild"],
                        help="rebuild: replay the case log from offset 0 into the KPI "
                             "projection (stop the metrics service first)")
    parser.add_argument("--batch-size", type=int, default=2000,
                        help="records per fetch while rebuilding (default 2000)")
    parser.set_defaults(func=_dispatch(parser.get_default("func")))


def _dispatch(run_service: Any) -> Any:
    def dispatch(args: argparse.Namespace) -> None:
        if getattr(args, "action", None) == "rebuild":
            cmd_rebuild(args)
        elif run_service is not None:
            run_service(args)

    return dispatch


def cmd_rebuild(args: argparse.Namespace) -> None:
    tune_gc()
    settings = MetricsSettings()
    bar: Progress | None = None

    def show(report: RebuildReport) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress(report.total, "rebuild")
        bar.advance(report.read - bar.done, extra=f"applied {report.applied}")

    try:
        report = asyncio.run(rebuild(settings, progress=show, batch_size=args.batch_size))
    except RebuildError as exc:
        print(f"rebuild failed, nothing changed: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        if bar is not None:
            bar.close()
    print(f"rebuilt the KPI projection from {report.read} records of the case log "
          f"in {report.seconds:.2f}s: {report.applied} events applied, "
          f"{report.duplicates} duplicates skipped, {report.undecodable} undecodable skipped; "
          f"{report.cases} cases, {report.counters} counters")
