"""Shared bench plumbing: servers in subprocesses, free ports, results, machine description."""

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
# Where each benchmark writes its JSON; the smoke tests (tests/bench) point it elsewhere.
RESULTS = Path(os.environ.get("MOTCUA_BENCH_RESULTS") or ROOT / "bench" / "results")


# A throwaway deployment on the loopback: the servers a benchmark starts get this key, and the
# benchmark signs its own tokens with it, as tests/harness.py does.
_SIGNING_KEY = "motcua-bench-signing-key-0123456789abcdef"


def auth_env() -> dict[str, str]:
    """Server settings for a benchmark: a known token key, and no rate limit (one client sends
    thousands of requests a second here)."""
    return {"MOTCUA_AUTH_SIGNING_KEY": _SIGNING_KEY, "MOTCUA_RATE_LIMIT_PER_SECOND": "1000000000",
            "MOTCUA_RATE_LIMIT_BURST": "1000000000", "MOTCUA_AUTH_TOKEN_TTL_SECONDS": "86400"}


def bearer(kind: str) -> dict[str, str]:
    """`Authorization` for a national client of `kind` (counter, portal, admin)."""
    from services.security.tokens import Tokens

    token, _ = Tokens(_SIGNING_KEY.encode()).issue(client_id=f"bench-{kind}", kind=kind,
                                                   ttl_seconds=86_400)
    return {"Authorization": f"Bearer {token}"}


def free_ports(count: int) -> list[int]:
    """`count` distinct ports, free now. Every socket stays bound until all are chosen: ports
    picked one at a time can come back twice, and two servers then race for one port."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def free_port() -> int:
    return free_ports(1)[0]


def machine() -> dict[str, Any]:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = line.split(":")[1].strip()
    except OSError:
        pass
    cpu = ""
    with suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "python": sys.version.split()[0],
            "platform": platform.platform(), "load_avg_at_start": os.getloadavg()}


def wait_http(url: str, timeout: float = 90,
              proc: "subprocess.Popen[bytes] | None" = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} was ready")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


@contextmanager
def server(cmd: Sequence[str], ready_url: str, env: dict[str, str] | None = None,
           log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    full_env = {**os.environ, **(env or {})}
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(list(cmd), env=full_env, stdout=out, stderr=subprocess.STDOUT,
                            cwd=ROOT)
    try:
        wait_http(ready_url, proc=proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()  # type: ignore[union-attr]


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def process_cpu_seconds(pid: int, *, children: bool = False) -> float:
    """The process's CPU time so far, all its threads; with `children`, that of the children
    it has reaped too."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime: fields 14-17 of proc(5), counted after the command name.
    ticks = [int(f) for f in fields[11:15]]
    return sum(ticks if children else ticks[:2]) / os.sysconf("SC_CLK_TCK")


class PostgresCpu:
    """The CPU time of a PostgreSQL server on this machine: the postmaster and its processes,
    those that have exited included (their time moves to the postmaster's reaped children's)."""

    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster

    @classmethod
    def of(cls, url: str) -> "PostgresCpu | None":
        """The server at `url`, or None if it runs on another machine."""
        import psycopg

        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
        # A backend's parent is the postmaster; on another machine /proc has neither.
        postmaster = _parent(int(row[0])) if row else None
        return cls(postmaster) if postmaster is not None else None

    def seconds(self) -> float:
        total = process_cpu_seconds(self.postmaster, children=True)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with suppress(OSError, ValueError):
                    if _parent(int(entry.name)) == self.postmaster:
                        total += process_cpu_seconds(int(entry.name))
        return total


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def quantiles(samples: Sequence[float]) -> dict[str, float]:
    s = sorted(samples)
    if not s:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    def q(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))]
    return {"p50": q(0.5), "p99": q(0.99), "max": s[-1], "mean": statistics.fmean(s)}


def save(name: str, figures: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "machine": machine(), **figures}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path


# What the benchmarks leave on the shared broker and PostgreSQL: topics under these prefixes
# and databases named motcua_bench_*. Thousands of leftover partitions slow the broker and every
# client's metadata, so a full run starts by removing them.
BENCH_TOPIC_PREFIXES = ("bench", "rebuild", "fresh", "motcua-bench-", "prof", "rbprof")


def clean_leftovers(kafka: str, pg_admin_url: str) -> tuple[int, int]:
    """Drop earlier benchmark runs' topics and databases; (topics, databases) removed."""
    import asyncio

    import psycopg
    from aiokafka.admin import AIOKafkaAdminClient

    async def topics() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(BENCH_TOPIC_PREFIXES)]
            for i in range(0, len(names), 100):
                await admin.delete_topics(names[i:i + 100])
            return len(names)
        finally:
            await admin.close()

    removed_topics = asyncio.run(topics())
    with psycopg.connect(pg_admin_url.replace("+psycopg", ""), autocommit=True) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'motcua_bench_%'")]
        for name in names:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return removed_topics, len(names)
