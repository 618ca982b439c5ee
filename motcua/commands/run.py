"""`motcua up` and `motcua intake|routing|metrics`: run the system."""

import argparse
import os
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from services.runtime import GEN0_THRESHOLD, tune_gc
from services.server import OneWriteHttpToolsProtocol
from services.settings import ServiceSettings


def register(sub: Any) -> None:
    up = sub.add_parser("up", help="run intake, routing and metrics in one process")
    up.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default localhost only)")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--data-dir", default=os.environ.get("MOTCUA_DATA_DIR", "data"))
    up.set_defaults(func=cmd_up)
    for name, port in (("intake", 8001), ("routing", 8002), ("metrics", 8003)):
        p = sub.add_parser(name, help=f"run the {name} service alone (settings from the "
                                      "environment: KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, …)")
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=port)
        p.set_defaults(func=cmd_service)


def serve(app: FastAPI, host: str, port: int, banner: str | None = None, *,
          gc_young: int = GEN0_THRESHOLD) -> None:
    if banner:
        print(banner, flush=True)
    tune_gc(gc_young)
    # uvicorn turns SIGTERM/SIGINT into a graceful lifespan shutdown: loops finish their batch.
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False,
                timeout_graceful_shutdown=20, http=OneWriteHttpToolsProtocol)


def cmd_up(args: argparse.Namespace) -> None:
    from intake.bootstrap import bootstrap_clients
    from motcua.embedded import create_embedded_app, settings_for

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(data_dir)
    app = create_embedded_app(**settings)
    base = f"http://{args.host}:{args.port}"
    credentials = data_dir / "credentials.json"
    created = bootstrap_clients(settings["intake"], credentials, url=base)
    clients = (f"  clients:  {', '.join(created)} created; id and secret in {credentials} "
               "(0600)\n" if created else "")
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    bus = f"Kafka {kafka}" if kafka else "embedded bus"
    db = "DATABASE_URL" if os.environ.get("DATABASE_URL") else f"SQLite files in {data_dir}"
    serve(app, args.host, args.port, banner=(
        f"motcua is starting (intake, routing, metrics in one process; {bus}; {db})\n"
        f"  API:      {base}/v1/\n"
        f"  API docs: {base}/docs\n"
        f"  metrics:  {base}/metrics\n"
        f"  health:   {base}/readyz\n"
        f"{clients}"
        f"  token:    motcua clients --data-dir {data_dir} token --as counter"
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
    settings: ServiceSettings = app.state.settings
    serve(app, args.host, args.port, gc_young=settings.gc_young_threshold,
          banner=f"motcua {name} on http://{args.host}:{args.port} (docs at /docs)")
