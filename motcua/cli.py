"""`motcua`: run the system (embedded or one service per process) and operate it."""

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from services.logging import configure_logging


def _serve(app: FastAPI, host: str, port: int, banner: str | None = None) -> None:
    if banner:
        print(banner, flush=True)
    # uvicorn turns SIGTERM/SIGINT into a graceful lifespan shutdown: loops finish their batch.
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False,
                timeout_graceful_shutdown=20)


def cmd_up(args: argparse.Namespace) -> None:
    from motcua.embedded import create_embedded_app, settings_for

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    app = create_embedded_app(**settings_for(data_dir))
    base = f"http://{args.host}:{args.port}"
    bus = "Kafka " + os.environ["KAFKA_BOOTSTRAP_SERVERS"] if os.environ.get(
        "KAFKA_BOOTSTRAP_SERVERS") else "embedded bus"
    db = "DATABASE_URL" if os.environ.get("DATABASE_URL") else f"SQLite files in {data_dir}"
    _serve(app, args.host, args.port, banner=(
        f"motcua is starting (intake, routing, metrics in one process; {bus}; {db})\n"
        f"  API:      {base}/v1/\n"
        f"  API docs: {base}/docs\n"
        f"  metrics:  {base}/metrics\n"
        f"  health:   {base}/readyz"
    ))


def cmd_service(args: argparse.Namespace) -> None:
    name = args.command
    if name == "intake":
        from intake.app import create_app as make
    elif name == "routing":
        from routing.app import create_app as make  # type: ignore[assignment]
    else:
        from metrics.app import create_app as make  # type: ignore[assignment]
    app = make()
    _serve(app, args.host, args.port,
           banner=f"motcua {name} on http://{args.host}:{args.port} (docs at /docs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motcua", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run intake, routing and metrics in one process")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--data-dir", default=os.environ.get("MOTCUA_DATA_DIR", "data"))
    up.set_defaults(func=cmd_up)
    for name, port in (("intake", 8001), ("routing", 8002), ("metrics", 8003)):
        p = sub.add_parser(name, help=f"run the {name} service alone (settings from the "
                                      "environment: KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, …)")
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=port)
        p.set_defaults(func=cmd_service)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    configure_logging(os.environ.get("MOTCUA_LOG_LEVEL", "INFO"))
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        logging.getLogger("motcua").info("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
