"""Bench 1: intake under a real HTTP load tool (wrk), against a bare FastAPI baseline.

Single-case `POST /v1/cases` (validated, committed with its outbox row, then published) and
`POST /v1/events:batch` (1,000 events per request), 64 connections. The baseline is
bench/baseline_app.py on the same uvicorn settings. Run: .venv/bin/python -m bench.intake_http
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, free_port, peak_rss_mb, save, server

CASE_BODY = ('{"agency_code":"000.00.20.H56","procedure_code":"2.000488","channel":"online",'
             '"online_level":"full","return_by_post":false,'
             '"applicant":{"kind":"citizen","id_number":"001203001234","name":"Nguyễn Văn A"}}')

SINGLE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
"""

# Each request: 1,000 transfers on existing cases, every event id unique across the run.
BATCH_LUA = """
local codes = {%s}
local n = 0
local thread_id = 0
setup = function(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
request = function()
  n = n + 1
  local parts = {}
  for i = 1, 1000 do
    local code = codes[((n * 1000 + i) %% #codes) + 1]
    parts[i] = string.format(
      '{"case_code":"%%s","type":"transferred","event_id":"%%08x-%%04x-4000-8000-%%012x",'
      .. '"from_office":"000.00.20.H56","to_office":"000.00.03.H56","method":"electronic"}',
      code, tid or 0, n %% 65536, n * 1000 + i)
  end
  return wrk.format("POST", "/v1/events:batch", {["Content-Type"] = "application/json"},
                    '{"events":[' .. table.concat(parts, ",") .. ']}')
end
"""


def wrk(url: str, lua: str, *, connections: int, seconds: int, threads: int = 2) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
        script = f.name
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout",
         "10s", "-s", script, url], capture_output=True, text=True, check=True,
    ).stdout
    Path(script).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {q: _ms(m) for q, m in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"requests_per_s": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1) if errors else None}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run(seconds: int, connections: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    py = str(ROOT / ".venv" / "bin" / "python")
    uv = ["--log-level", "warning", "--no-access-log"]
    results: dict[str, Any] = {"connections": connections, "seconds": seconds}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with server([py, "-m", "uvicorn", "bench.baseline_app:app", "--port", str(port), *uv],
                f"{base}/readyz"):
        results["baseline_single"] = wrk(f"{base}/v1/cases", SINGLE_LUA % CASE_BODY,
                                         connections=connections, seconds=seconds)
        results["baseline_batch"] = wrk(f"{base}/v1/events:batch", BATCH_LUA % '"X"',
                                        connections=8, seconds=seconds)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = Path(tempfile.mkdtemp(prefix="motcua-bench-"))
    env = {"MOTCUA_LOG_LEVEL": "WARNING"}
    with server([py, "-m", "motcua.cli", "up", "--port", str(port), "--data-dir", str(data)],
                f"{base}/readyz", env=env, log=data / "up.log") as proc:
        results["motcua_single"] = wrk(f"{base}/v1/cases", SINGLE_LUA % CASE_BODY,
                                       connections=connections, seconds=seconds)
        codes = [httpx.post(f"{base}/v1/cases", json={
            "agency_code": "000.00.20.H56", "procedure_code": "2.000488", "channel": "counter"},
            timeout=30).json()["case_code"] for _ in range(200)]
        lua_codes = ",".join(f'"{c}"' for c in codes)
        results["motcua_batch"] = wrk(f"{base}/v1/events:batch", BATCH_LUA % lua_codes,
                                      connections=8, seconds=seconds)
        results["motcua_peak_rss_mb"] = peak_rss_mb(proc.pid)
    for kind in ("single", "batch"):
        m, b = results[f"motcua_{kind}"], results[f"baseline_{kind}"]
        results[f"ratio_{kind}"] = m["requests_per_s"] / b["requests_per_s"]
    results["motcua_batch_events_per_s"] = results["motcua_batch"]["requests_per_s"] * 1000
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    r = run(args.seconds, args.connections)
    for kind in ("single", "batch"):
        for who in ("baseline", "motcua"):
            x = r[f"{who}_{kind}"]
            print(f"{kind:6} {who:8} {x['requests_per_s']:10.1f} req/s  p50 {x['p50_ms']} ms  "
                  f"p99 {x['p99_ms']} ms  non-2xx {x['non_2xx']}")
        print(f"{kind:6} ratio motcua/baseline = {r[f'ratio_{kind}']:.3f}")
    print(f"batch events/s: {r['motcua_batch_events_per_s']:.0f}; "
          f"peak RSS (motcua up) {r['motcua_peak_rss_mb']:.0f} MB")
    save("intake_http", r)


if __name__ == "__main__":
    main()
