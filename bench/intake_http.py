"""Bench 1: intake under a real HTTP load tool (wrk), against a bare FastAPI baseline.

Single-case `POST /v1/cases` (validated, committed with its outbox row, then published) at 64
connections, with `motcua.loadgen` bodies (many counters) and with one body (one counter), and
`POST /v1/events:batch` (PER_BATCH events a request, transfers on `--batch-cases` open
cases) at 8 connections and at the single-case run's connections, as a national counter client
with a bearer token (verified on every request). `--mode intake` (default) runs the
intake service alone on PostgreSQL and Kafka; `--mode up` the one-process default. The baseline
is bench/baseline_app.py on the same uvicorn settings, without authentication.
Run: .venv/bin/python -m bench.intake_http [--mode up]
"""

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import (
    ROOT,
    PostgresCpu,
    auth_env,
    bearer,
    free_ports,
    peak_rss_mb,
    process_cpu_seconds,
    save,
    server,
)
from services.server import PROTOCOL

CASE_BODY = ('{"agency_code":"000.00.20.H56","procedure_code":"2.000488","channel":"online",'
             '"online_level":"full","return_by_post":false,'
             '"applicant":{"kind":"citizen","id_number":"001203001234","name":"Nguyễn Văn A"}}')

SINGLE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%s"
wrk.body = [[%s]]
"""

# Round robin over realistic bodies (many counters and procedures, as a province sends them).
MANY_LUA = """
local bodies = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/cases", {["Content-Type"] = "application/json",
                                          ["Authorization"] = "%s"}, bodies[(n %% #bodies) + 1])
end
"""


def realistic_bodies(n: int = 2000, province: str = "H56") -> list[str]:
    """`POST /v1/cases` bodies of `motcua.loadgen` traffic, received now: no event id (each
    request is a new case, never a replay) and no received_at."""
    from datetime import date

    from motcua.loadgen import LoadGenerator
    from registry.catalogue import Catalogue

    gen = LoadGenerator(Catalogue.load(), province=province, seed=7)
    out = []
    for req in gen.requests(start=date(2026, 3, 2), days=1, cases_per_day=n):
        if req.path == "/v1/cases":
            body = {k: v for k, v in req.body.items() if k not in ("event_id", "received_at")}
            out.append(orjson.dumps(body).decode())
    return out


def lua_string(text: str) -> str:
    return "[[" + text + "]]"

# Each request: PER_BATCH transfers on existing cases, every event id unique across the run
# (and across the rounds: the round is part of the id).
# 100, not the API's 1,000: the cost is an event's either way (1,000-event requests ran at
# 7,280-9,770 events/s and the same CPU an event, docs/benchmarks.md, fourteenth pass), and
# 100 gives wrk ten times the requests to time. Requests in flight together touch different
# cases (as different counters' batches would): each takes the next PER_BATCH cases of its
# thread's half of the list.
PER_BATCH = 100
# Open cases the batch requests transfer: at 64 connections 6,400 events are in flight, and on
# the 2,000 cases of earlier passes three events a case at once queued on each other's locks,
# which no province's traffic does (docs/benchmarks.md, seventeenth pass).
BATCH_CASES = 30_000
BATCH_LUA = """
local codes = {%s}
local per = %d
local round = %d
local n = 0
local thread_id = 0
setup = function(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
request = function()
  n = n + 1
  local parts = {}
  local first = (tid or 0) * (#codes / 2) + n * per
  for i = 1, per do
    local code = codes[((first + i) %% #codes) + 1]
    parts[i] = string.format(
      '{"case_code":"%%s","type":"transferred","event_id":"%%08x-%%04x-4000-8000-%%012x",'
      .. '"from_office":"000.00.20.H56","to_office":"000.00.03.H56","method":"electronic"}',
      code, round * 256 + (tid or 0), n %% 65536, n * per + i)
  end
  return wrk.format("POST", "/v1/events:batch", {["Content-Type"] = "application/json",
                                                 ["Authorization"] = "%s"},
                    '{"events":[' .. table.concat(parts, ",") .. ']}')
end
"""


def wrk(url: str, lua: str, *, connections: int, seconds: int, threads: int = 2) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
        script = f.name
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout",
         "60s", "-s", script, url], capture_output=True, text=True, check=True,
    ).stdout
    Path(script).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = {q: _ms(m) for q, m in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"requests_per_s": rps, "requests": done, "p50_ms": lat.get("50"),
            "p99_ms": lat.get("99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1) if errors else None}


def wrk_on(pid: int, url: str, lua: str, *, connections: int, seconds: int,
           postgres: PostgresCpu | None = None) -> dict[str, Any]:
    """wrk's figures, with the CPU a request of the server's process (`pid`) over the run, and
    of PostgreSQL's processes: the work behind the rates, which the machine's load moves less
    than the rates (docs/benchmarks.md, eighteenth pass)."""
    cpu, db = process_cpu_seconds(pid), postgres.seconds() if postgres else 0.0
    r = wrk(url, lua, connections=connections, seconds=seconds)
    done = max(r["requests"], 1)
    r["server_cpu_us"] = (process_cpu_seconds(pid) - cpu) / done * 1e6
    if postgres is not None:
        r["postgres_cpu_us"] = (postgres.seconds() - db) / done * 1e6
    return r


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def motcua_command(mode: str, port: int, data: Path, *, database: str | None = None,
                   prefix: str | None = None) -> tuple[list[str], dict[str, str]]:
    """`up`: the one-process default (SQLite, embedded bus, routing and metrics beside intake).
    `intake`: the intake service alone, as deployed to scale (PostgreSQL, Kafka), on a fresh
    database and topic prefix unless given ones (processes sharing them)."""
    py = str(ROOT / ".venv" / "bin" / "python")
    env = {"MOTCUA_LOG_LEVEL": "WARNING", "MOTCUA_DATA_DIR": str(data), **auth_env()}
    if mode == "up":
        return [py, "-m", "motcua.cli", "up", "--port", str(port), "--data-dir", str(data)], env
    from bench.projection import KAFKA, fresh_database

    env.update({"KAFKA_BOOTSTRAP_SERVERS": KAFKA,
                "INTAKE_DATABASE_URL": database or fresh_database(),
                "MOTCUA_TOPIC_PREFIX": prefix or f"{data.name}."})
    return [py, "-m", "motcua.cli", "intake", "--port", str(port)], env


def run(seconds: int, connections: int, mode: str = "intake", rounds: int = 3,
        batch_cases: int = BATCH_CASES) -> dict[str, Any]:
    """Both servers up side by side, their wrk runs alternated `rounds` times (baseline, then
    motcua, for each load): this machine's speed drifts by a fifth within minutes, so figures
    are the rounds' medians and the ratio the median of each round's ratio."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    py = str(ROOT / ".venv" / "bin" / "python")
    uv = ["--log-level", "warning", "--no-access-log"]
    results: dict[str, Any] = {"connections": connections, "seconds": seconds, "rounds": rounds}
    bport, port = free_ports(2)
    bbase, base = f"http://127.0.0.1:{bport}", f"http://127.0.0.1:{port}"
    data = Path(tempfile.mkdtemp(prefix="motcua-bench-"))
    cmd, env = motcua_command(mode, port, data)
    results["mode"] = mode
    auth = bearer("counter")
    # The same server as motcua's (motcua.commands.run.serve): uvicorn with its protocol.
    with server([py, "-m", "uvicorn", "bench.baseline_app:app", "--port", str(bport),
                 "--http", PROTOCOL, *uv],
                f"{bbase}/readyz") as bare, \
            server(cmd, f"{base}/readyz", env=env, log=data / "server.log") as proc:
        url = env.get("INTAKE_DATABASE_URL")
        pg = PostgresCpu.of(url) if url else None
        many = ",".join(lua_string(b) for b in realistic_bodies())
        codes = asyncio.run(open_cases(base, auth, batch_cases))
        lua_codes = ",".join(f'"{c}"' for c in codes)
        runs: list[dict[str, Any]] = []
        for n in range(rounds):
            runs.append({
                "baseline_single": wrk_on(bare.pid, f"{bbase}/v1/cases",
                                          SINGLE_LUA % ("", CASE_BODY),
                                          connections=connections, seconds=seconds),
                "motcua_single": wrk_on(proc.pid, f"{base}/v1/cases",
                                        MANY_LUA % (many, auth["Authorization"]),
                                        connections=connections, seconds=seconds, postgres=pg),
                "baseline_batch": wrk_on(bare.pid, f"{bbase}/v1/events:batch",
                                         BATCH_LUA % ('"X", "Y"', PER_BATCH, n, ""),
                                         connections=8, seconds=seconds),
                "motcua_batch": wrk_on(proc.pid, f"{base}/v1/events:batch",
                                       BATCH_LUA % (lua_codes, PER_BATCH, n,
                                                    auth["Authorization"]),
                                       connections=8, seconds=seconds, postgres=pg),
            })
        # The same body every time: one counter, whose daily case sequence every request
        # takes in turn (a row lock held to the commit). Once: it has no baseline.
        results["motcua_single_one_counter"] = wrk_on(
            proc.pid, f"{base}/v1/cases", SINGLE_LUA % (auth["Authorization"], CASE_BODY),
            connections=connections, seconds=seconds, postgres=pg)
        # A backlog: more than one transaction's worth waits (intake.writer). Last, and a
        # second apart: when wrk stops, intake still writes the requests it had taken (about
        # 6,400 events, half a second), and the run after them started behind that: right
        # after one, one counter's p99 read 185-400 ms instead of about 30 (docs/benchmarks.md,
        # seventeenth pass).
        for n, run_ in enumerate(runs):
            time.sleep(1)
            run_["motcua_batch_wide"] = wrk_on(
                proc.pid, f"{base}/v1/events:batch",
                BATCH_LUA % (lua_codes, PER_BATCH, rounds + n, auth["Authorization"]),
                connections=connections, seconds=seconds, postgres=pg)
        results["motcua_peak_rss_mb"] = peak_rss_mb(proc.pid)
    results["runs"] = runs
    for key in ("baseline_single", "motcua_single", "baseline_batch", "motcua_batch",
                "motcua_batch_wide"):
        results[key] = {q: statistics.median(r[key][q] for r in runs)
                        for q in ("requests_per_s", "p50_ms", "p99_ms", "server_cpu_us",
                                  "postgres_cpu_us") if q in runs[0][key]}
        results[key]["non_2xx"] = sum(r[key]["non_2xx"] for r in runs)
    for kind in ("single", "batch"):
        ratios = [r[f"motcua_{kind}"]["requests_per_s"] / r[f"baseline_{kind}"]["requests_per_s"]
                  for r in runs]
        results[f"ratios_{kind}"] = ratios
        results[f"ratio_{kind}"] = statistics.median(ratios)
    results["events_per_batch"] = PER_BATCH
    results["motcua_batch_events_per_s"] = results["motcua_batch"]["requests_per_s"] * PER_BATCH
    results["motcua_batch_wide_events_per_s"] = (results["motcua_batch_wide"]["requests_per_s"]
                                                 * PER_BATCH)
    results["batch_cases"] = batch_cases
    return results


async def open_cases(base: str, auth: dict[str, str], n: int) -> list[str]:
    """`n` cases received at the counter, 64 requests at a time, for the batch requests."""
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=60) as client:
        async def one() -> str:
            r = await client.post("/v1/cases", json={
                "agency_code": "000.00.20.H56", "procedure_code": "2.000488",
                "channel": "counter"})
            r.raise_for_status()
            return str(r.json()["case_code"])

        codes: list[str] = []
        for start in range(0, n, 64):
            codes += await asyncio.gather(*(one() for _ in range(min(64, n - start))))
        return codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3,
                        help="baseline and motcua runs alternated this many times")
    parser.add_argument("--mode", choices=("intake", "up"), default="intake",
                        help=motcua_command.__doc__)
    parser.add_argument("--batch-cases", type=int, default=BATCH_CASES,
                        help="open cases the batch requests transfer")
    args = parser.parse_args()
    r = run(args.seconds, args.connections, args.mode, args.rounds, args.batch_cases)
    for kind in ("single", "batch"):
        for who in ("baseline", "motcua"):
            x = r[f"{who}_{kind}"]
            print(f"{kind:6} {who:8} {x['requests_per_s']:10.1f} req/s  p50 {x['p50_ms']} ms  "
                  f"p99 {x['p99_ms']} ms  non-2xx {x['non_2xx']}")
        print(f"{kind:6} ratio motcua/baseline = {r[f'ratio_{kind}']:.3f} (median of "
              f"{', '.join(f'{x:.3f}' for x in r[f'ratios_{kind}'])})")
    print(f"batch events/s: {r['motcua_batch_events_per_s']:.0f} at 8 connections, "
          f"{r['motcua_batch_wide_events_per_s']:.0f} at {args.connections}; "
          f"peak RSS ({args.mode}) {r['motcua_peak_rss_mb']:.0f} MB")
    save("intake_http" if args.mode == "intake" else "intake_http_up", r)


if __name__ == "__main__":
    main()
