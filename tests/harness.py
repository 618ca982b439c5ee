"""A motcua stack under test: the embedded composition in-process, driven over HTTP."""

import asyncio
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bench.common import free_ports
from motcua.embedded import create_embedded_app, settings_for
from services.clock import Clock, system_clock
from services.security import Tokens
from services.server import OneWriteHttpToolsProtocol

# Paths by the kind of client that calls them; everything else is a counter's.
ADMIN_PATHS = ("/v1/admin", "/v1/audit")
PORTAL_PATHS = ("/v1/kpis", "/v1/breakdown", "/v1/overdue", "/v1/plans")


class RoleAuth(httpx.Auth):
    """Authenticates a test's requests as the kind of client that would make them: a national
    counter, a national portal or an administrator, by path, with tokens minted by the stack's
    own signing key. A request that carries its own Authorization header keeps it."""

    def __init__(self, signing_key: str, issuer: str = "motcua") -> None:
        self.signing_key = signing_key
        tokens = Tokens(signing_key.encode(), issuer=issuer)
        self.tokens = {
            kind: tokens.issue(client_id=f"test-{kind}", kind=kind, ttl_seconds=86_400)[0]
            for kind in ("counter", "portal", "admin")
        }

    @staticmethod
    def kind_for(path: str) -> str:
        if path.startswith(ADMIN_PATHS):
            return "admin"
        return "portal" if path.startswith(PORTAL_PATHS) else "counter"

    def headers(self, kind: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[kind]}"}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "authorization" not in request.headers:
            request.headers.update(self.headers(self.kind_for(request.url.path)))
        yield request


def auth_settings(signing_key: str | None = None) -> dict[str, Any]:
    """Settings every test stack gets: its own signing key (so tests mint tokens) and rate
    limits high enough for load-shaped tests (tests/security checks the limits themselves)."""
    return {"auth_signing_key": signing_key or secrets.token_urlsafe(32),
            "rate_limit_per_second": 1_000_000.0, "rate_limit_burst": 1_000_000}


def auth_env(signing_key: str) -> dict[str, str]:
    """The same, for processes configured by the environment."""
    return {"MOTCUA_AUTH_SIGNING_KEY": signing_key, "MOTCUA_RATE_LIMIT_PER_SECOND": "1000000",
            "MOTCUA_RATE_LIMIT_BURST": "1000000"}


@dataclass
class Stack:
    client: TestClient
    settings: dict[str, Any]
    closed: bool = field(default=False)
    clock: Clock = system_clock

    def close(self) -> None:
        if not self.closed:
            self.client.__exit__(None, None, None)
            self.closed = True

    def restart(self) -> "Stack":
        """Shut down gracefully and start a new process-equivalent on the same data."""
        self.close()
        fresh = _open(self.settings, self.clock)
        self.client, self.closed = fresh.client, False
        return self

    def component(self, name: str) -> Any:
        return self.client.app.state.components[name]  # type: ignore[attr-defined]

    def settled(self, timeout: float = 60.0) -> None:
        """Wait until every outbox is published and every consumer has caught up."""
        def lag() -> int:
            return sum(
                sum(self.component(n).consumer.stats.lag.values())
                + (0 if self.component(n).consumer.stats.running else 1)
                for n in ("intake", "routing", "metrics")
            )

        wait_settled(lambda: self.client.get("/readyz").json(), timeout, lag)


class StackFactory(Protocol):
    def __call__(self, bus: str, db: str, **kwargs: Any) -> Stack: ...


def start_stack(
    *, data_dir: Path, kafka: str | None, database_url: str | None, topic_prefix: str,
    clock: Clock = system_clock, **overrides: Any,
) -> Stack:
    data_dir.mkdir(parents=True, exist_ok=True)
    opts: dict[str, Any] = {"topic_prefix": topic_prefix, "consumer_poll_ms": 50,
                            **auth_settings(), **overrides}
    # Explicit None overrides what the environment says: a test chooses its bus and database.
    opts["kafka_bootstrap_servers"] = kafka
    opts["database_url"] = database_url
    return _open(settings_for(data_dir, **opts), clock)


def _open(settings: dict[str, Any], clock: Clock = system_clock) -> Stack:
    app = create_embedded_app(**settings, clock=clock)
    key = settings["intake"].auth_signing_key.get_secret_value()
    client = TestClient(app, raise_server_exceptions=True)
    client.auth = RoleAuth(key)
    client.__enter__()
    wait_ready(lambda: client.get("/readyz"))
    return Stack(client=client, settings=settings, clock=clock)


def wait_ready(probe: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        r = probe()
        if r.status_code == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {timeout}s: {r.text}")
        time.sleep(0.2)


@contextmanager
def server_thread(app: FastAPI, name: str, **config: Any
                  ) -> Iterator[tuple[int, asyncio.AbstractEventLoop]]:
    """uvicorn serving `app` in a thread of its own on a free port, with the protocol motcua
    serves with (motcua.commands.run.serve) unless `config` names another; (port, its event
    loop) once it listens, stopped afterwards."""
    (port,) = free_ports(1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False,
                                           **{"http": OneWriteHttpToolsProtocol, **config}))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),),
                              name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.02)
        yield port, loop
    finally:
        server.should_exit = True
        thread.join(60)
        loop.close()


def answers_as(client: httpx.Client, service: str) -> bool:
    """Ready, and the server on the port is `service`'s: its readiness checks carry the
    component's name. A neighbour's server on a reused port must not pass for ours."""
    try:
        r = client.get("/readyz")
    except httpx.TransportError:
        return False
    return r.status_code == 200 and any(k.startswith(f"{service}.") for k in r.json()["checks"])


def start_processes(services: Sequence[str], command: Callable[[str, int], list[str]],
                    env: dict[str, str], log_dir: Path, timeout: float = 90.0,
                    component: dict[str, str] | None = None,
                    **popen: Any) -> dict[str, tuple["subprocess.Popen[bytes]", int]]:
    """One process a service, each on a port of its own (`command(name, port)`, its output in
    `log_dir/<name>.log`), back once each answers as itself: its readiness names the
    component `component[name]` (by default the name itself).

    A port taken by someone else between choosing and binding makes uvicorn exit; that
    process is started again on a fresh port (twice at most). Any other exit fails at once,
    with the process's log."""
    ports = dict(zip(services, free_ports(len(services)), strict=True))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    starts = dict.fromkeys(services, 0)
    offsets = dict.fromkeys(services, 0)  # where this start's part of the log begins

    def log_of(name: str) -> Path:
        return log_dir / f"{name}.log"

    def launch(name: str) -> None:
        starts[name] += 1
        with open(log_of(name), "ab") as out:
            offsets[name] = out.tell()
            procs[name] = subprocess.Popen(command(name, ports[name]), env=env, stdout=out,
                                           stderr=subprocess.STDOUT, **popen)

    for name in services:
        launch(name)
    pending = set(services)
    deadline = time.monotonic() + timeout
    try:
        while pending:
            for name in sorted(pending):
                with httpx.Client(base_url=f"http://127.0.0.1:{ports[name]}",
                                  timeout=10) as probe:
                    if answers_as(probe, (component or {}).get(name, name)):
                        pending.discard(name)
                        continue
                if procs[name].poll() is None:
                    continue
                log = log_of(name).read_bytes()[offsets[name]:].decode(errors="replace")
                if "address already in use" not in log.lower() or starts[name] >= 3:
                    raise AssertionError(f"{name} exited ({procs[name].returncode}):\n"
                                         f"{log[-3000:]}")
                ports[name] = free_ports(1)[0]
                launch(name)
            if pending and time.monotonic() > deadline:
                raise AssertionError(f"not ready after {timeout}s: {sorted(pending)}")
            time.sleep(0.2)
    except BaseException:
        for proc in procs.values():
            proc.kill()
            proc.wait(10)
        raise
    return {name: (procs[name], ports[name]) for name in services}


def wait_settled(readyz: Callable[[], dict[str, Any]], timeout: float,
                 lag: Callable[[], int] | None = None) -> None:
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        checks = readyz().get("checks", {})
        backlog = sum(v for k, v in checks.items() if k.endswith("outbox_backlog") and v)
        pending = lag() if lag else 0
        quiet = quiet + 1 if backlog == 0 and pending == 0 else 0
        if quiet >= 3:
            return
        time.sleep(0.2)
    raise AssertionError("the stack did not settle in time")
