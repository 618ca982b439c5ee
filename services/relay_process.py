"""A service's outbox relay in a child process of its own, woken by PostgreSQL's NOTIFY.

Reading the outbox, producing to Kafka and deleting what was published took an eighth of
intake's event loop under the single-case load, on the one core that also parses, validates
and writes every request. In a child process the relay runs on the machine's other core; the
API process only sends a NOTIFY after each commit that added to the outbox (docs/benchmarks.md,
eleventh pass).

Nothing about delivery changes: the child runs the same `Relay` (advisory-lock leadership,
publish in id order, delete only what the broker acknowledged), so a crash of either process
loses nothing and at worst publishes a batch twice, as before. The parent starts the child,
restarts it if it exits, and stops it with the service. The child exits on its own when the
parent's end of its stdin closes, so a parent killed with SIGKILL leaves no relay behind.
The child reports how many events it published, and its last error, as JSON lines on its
stdout, so the service's metrics and readiness still show them.
"""

import asyncio
import contextlib
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

import orjson
import psycopg
from sqlalchemy import Engine

from services.db import DriverConnection
from services.outbox import Outbox, Relay

log = logging.getLogger(__name__)
# How often the child tells the parent its figures, at most.
REPORT_SECONDS = 0.2


def channel(outbox: Outbox) -> str:
    """The NOTIFY channel of an outbox: its table's name (one database per service)."""
    return outbox.table.name


class RelayProcess:
    """The parent's side: the same face as `Relay` (`wake`, `run`, `published`,
    `last_error`) for a relay running in a child process."""

    def __init__(self, outbox: Outbox, engine: Engine, *, command: Sequence[str],
                 env: Mapping[str, str] | None = None, stop_seconds: float = 10.0) -> None:
        self._channel = channel(outbox)
        self._notifier = DriverConnection(engine, autocommit=True)
        self._command = list(command)
        self._env = dict(env or {})
        self._stop_seconds = stop_seconds
        self._notifying: asyncio.Task[None] | None = None
        self._again = False
        self.published = 0
        self.last_error: str | None = "the relay process has not started yet"
        self.pid: int | None = None
        self.restarts = 0

    def wake(self) -> None:
        """After a commit that added to the outbox (from the event loop): one NOTIFY in flight
        at a time, and one more after it if commits came meanwhile."""
        if self._notifying is not None and not self._notifying.done():
            self._again = True
            return
        self._notifying = asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        while True:
            self._again = False
            try:
                conn = await self._notifier.get()
                await conn.execute(f"NOTIFY {self._channel}")
            except psycopg.Error as exc:
                # The child also polls the outbox: a lost wake-up delays, never loses.
                log.info("could not wake the relay process: %s", exc)
                self._notifier.drop()
                return
            if not self._again:
                return

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        try:
            while not stop.is_set():
                started = time.monotonic()
                code = await self._run_child(stop)
                if stop.is_set():
                    break
                self.restarts += 1
                if time.monotonic() - started > 60:
                    backoff = 0.5
                self.last_error = f"the relay process exited with code {code}; restarting"
                log.error("%s (in %.1fs)", self.last_error, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 30.0)
        finally:
            if self._notifying is not None:
                self._notifying.cancel()
            self._notifier.drop()

    async def _run_child(self, stop: asyncio.Event) -> int:
        proc = await asyncio.create_subprocess_exec(
            *self._command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **self._env})
        self.pid = proc.pid
        assert proc.stdin is not None and proc.stdout is not None
        follower = asyncio.create_task(self._follow(proc.stdout, self.published))
        exited = asyncio.create_task(proc.wait())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                # End of its stdin: the child finishes the batch in hand, releases the
                # relay's lock and exits.
                proc.stdin.close()
                try:
                    await asyncio.wait_for(asyncio.shield(exited), self._stop_seconds)
                except TimeoutError:
                    log.warning("the relay process did not stop in %ss; killing it",
                                self._stop_seconds)
                    proc.kill()
            return await exited
        finally:
            stopping.cancel()
            if proc.returncode is None:  # cancelled: never leave the child behind
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            self.pid = None

    async def _follow(self, out: asyncio.StreamReader, base: int) -> None:
        while line := await out.readline():
            try:
                report = orjson.loads(line)
                self.published = base + int(report["published"])
                self.last_error = report.get("error")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("unreadable report from the relay process: %r", line[:200])


# --- the child's side ----------------------------------------------------------------------


async def serve(relay: Relay, engine: Engine, outbox: Outbox, *, parent: int = 0,
                reports: IO[bytes] | None = None) -> None:
    """Run `relay` until SIGTERM, SIGINT or the end of the `parent` file descriptor (stdin:
    the parent gone or stopping), woken by NOTIFY on the outbox's channel, reporting on
    `reports` (stdout)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    out = reports if reports is not None else sys.stdout.buffer
    helpers = [
        asyncio.create_task(_listen(engine, channel(outbox), relay, stop)),
        asyncio.create_task(_watch_parent(parent, stop)),
        asyncio.create_task(_report(relay, stop, out)),
    ]
    try:
        await relay.run(stop)
    finally:
        stop.set()
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        with contextlib.suppress(OSError):
            _write_report(relay, out)


async def _listen(engine: Engine, name: str, relay: Relay, stop: asyncio.Event) -> None:
    db = DriverConnection(engine, autocommit=True)
    while not stop.is_set():
        try:
            conn = await db.get()
            await conn.execute(f"LISTEN {name}")
            relay.wake()  # whatever was committed while nobody listened
            async for _ in conn.notifies():
                relay.wake()
        except psycopg.Error as exc:
            db.drop()
            log.info("relay process: listening on %s failed (%s); polling meanwhile", name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            if stop.is_set():
                db.drop()


async def _watch_parent(fd: int, stop: asyncio.Event) -> None:
    """Stop at the end of `fd` if it is a pipe (asyncio gives a child's stdin as a socket
    pair): the parent closed it, or died. Run by hand or by a supervisor (stdin a terminal,
    /dev/null or a file), only a signal stops it."""
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                 os.fdopen(os.dup(fd), "rb"))
    while await reader.read(4096):
        pass
    stop.set()


async def _report(relay: Relay, stop: asyncio.Event, out: IO[bytes]) -> None:
    last: Any = None
    while not stop.is_set():
        now = (relay.published, relay.last_error)
        if now != last:
            try:
                _write_report(relay, out)
            except OSError:  # the parent is gone
                stop.set()
                return
            last = now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REPORT_SECONDS)


def _write_report(relay: Relay, out: IO[bytes]) -> None:
    out.write(orjson.dumps({"published": relay.published, "error": relay.last_error}) + b"\n")
    out.flush()
