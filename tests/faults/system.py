"""A motcua deployment under fault: intake, routing and metrics as processes on the suite's own
broker and PostgreSQL, a counter load that remembers every answer, and the end-of-scenario check
that every accepted event is in the KPIs exactly once."""

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests import reference, scenario
from tests.conftest import create_pg_database, drop_pg_database
from tests.e2e.test_scenario import KPI_NAMES
from tests.e2e.test_three_processes import consumer_lag
from tests.faults.conftest import REPO, Infra
from tests.harness import RoleAuth, answers_as, auth_env, free_ports
from tests.scenario import PlannedCase

KIND = {"intake": "intake", "intake2": "intake", "routing": "routing", "metrics": "metrics"}


@dataclass
class Proc:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    client: httpx.Client
    log: Path


class System:
    def __init__(self, infra: Infra, tmp_path: Path, prefix: str) -> None:
        self.infra = infra
        self.tmp = tmp_path
        self.prefix = prefix
        self.databases = {k: create_pg_database(infra.pg_admin_url)
                          for k in ("intake", "routing", "metrics")}
        self.procs: dict[str, Proc] = {}
        # Chosen together, so no two are the same; a name keeps its port across restarts.
        self.ports = dict(zip(KIND, free_ports(len(KIND)), strict=True))
        self.starts: Counter[str] = Counter()
        self.signing_key = secrets.token_urlsafe(32)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update({
            "KAFKA_BOOTSTRAP_SERVERS": self.infra.kafka,
            "MOTCUA_TOPIC_PREFIX": self.prefix,
            "MOTCUA_CONSUMER_POLL_MS": "50",
            # Small batches: a kill lands mid-batch more often than not.
            "MOTCUA_CONSUMER_BATCH_SIZE": "20",
            "MOTCUA_DATA_DIR": str(self.tmp),
            "MOTCUA_LOG_LEVEL": "INFO",
            **auth_env(self.signing_key),
            **{f"{n.upper()}_DATABASE_URL": url for n, url in self.databases.items()},
        })
        return env

    def start(self, *names: str, launcher: list[str] | None = None) -> None:
        """Start processes (a name's port is kept across restarts); waits until all are ready."""
        for name in names:
            port = self.ports[name]
            self.starts[name] += 1
            log = self.tmp / f"{name}.{self.starts[name]}.log"
            cmd = [*(launcher or [sys.executable, "-m", "motcua.cli"]), KIND[name],
                   "--port", str(port)]
            with open(log, "wb") as out:
                popen = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=REPO)
            self.procs[name] = Proc(name, port, popen,
                                    httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                                 auth=RoleAuth(self.signing_key)),
                                    log)
        for name in names:
            self.wait_ready(name)

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        p = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p.popen.poll() is not None:
                raise AssertionError(f"{name} exited: {p.log.read_text()[-3000:]}")
            if answers_as(p.client, KIND[name]):
                return
            time.sleep(0.3)
        raise AssertionError(f"{name} not ready: {p.log.read_text()[-3000:]}")

    def kill(self, name: str) -> None:
        """kill -9: no shutdown hook runs, whatever was in flight is simply gone."""
        p = self.procs[name]
        p.popen.send_signal(signal.SIGKILL)
        p.popen.wait(30)

    def terminate(self, name: str) -> str:
        """SIGTERM and wait; returns the log, asserting a graceful shutdown."""
        p = self.procs[name]
        p.popen.send_signal(signal.SIGTERM)
        code = p.popen.wait(60)
        log = p.log.read_text()
        assert code in (0, -signal.SIGTERM), log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        return log

    def client(self, name: str) -> httpx.Client:
        return self.procs[name].client

    def metric(self, name: str, metric: str) -> float:
        total = 0.0
        for line in self.client(name).get("/metrics").text.splitlines():
            if line.startswith(metric + "{") or line.startswith(metric + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def settle(self, timeout: float = 120.0) -> None:
        """Until every outbox is empty and every consumer has caught up (three quiet polls)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        last: Any = None
        while time.monotonic() < deadline:
            try:
                backlog = 0
                for name in self.procs:
                    checks = self.client(name).get("/readyz").json().get("checks", {})
                    backlog += sum(v for k, v in checks.items()
                                   if k.endswith("outbox_backlog") and v)
                    if checks.get(f"{KIND[name]}.database") is False:
                        backlog += 1
                lag = sum(consumer_lag(self.client(n).get("/metrics").text) for n in self.procs)
                last = (backlog, lag)
                quiet = quiet + 1 if backlog == 0 and lag == 0 else 0
            except httpx.TransportError as exc:
                last, quiet = repr(exc), 0
            if quiet >= 3:
                return
            time.sleep(0.3)
        raise AssertionError(f"the system did not settle: {last}\n{self.diagnose()}")

    def diagnose(self) -> str:
        """Each process's consumer lines from /metrics and the end of its log."""
        out = []
        for name, p in self.procs.items():
            out.append(f"--- {name} (exit {p.popen.poll()})")
            try:
                out += [line for line in p.client.get("/metrics").text.splitlines()
                        if line.startswith(("motcua_consumer_lag", "motcua_consumer_up",
                                            "motcua_consumer_parked", "motcua_outbox_backlog"))]
            except httpx.TransportError as exc:
                out.append(repr(exc))
            out += p.log.read_text(errors="replace").splitlines()[-25:]
        return "\n".join(out)

    def close(self) -> None:
        for p in self.procs.values():
            if p.popen.poll() is None:
                p.popen.kill()
                p.popen.wait(30)
            p.client.close()
        for url in self.databases.values():
            drop_pg_database(url)


@dataclass
class Answer:
    status: int | None  # None: no answer at all (connection refused, reset, timeout)
    body: Any = None


@dataclass
class Load:
    """Counters posting a planned scenario; each request is retried with the same event id
    until it gets a final answer (2xx or 4xx), as a counter's client would."""

    cases: list[PlannedCase]
    targets: list[httpx.Client]
    pace_s: float = 0.0
    give_up_s: float = 90.0
    twice: bool = False  # every request to every target at once
    sent: int = 0
    attempts: int = 0
    accepted: dict[str, str] = field(default_factory=dict)  # event id -> case code
    rejected: list[tuple[str, int, Any]] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    double_answers: list[tuple[int, ...]] = field(default_factory=list)
    different_bodies: list[list[Any]] = field(default_factory=list)
    done: int = 0
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    @property
    def total(self) -> int:
        return sum(1 + len(pc.later) for pc in self.cases)

    def start(self) -> "Load":
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()
        return self

    def wait_progress(self, fraction: float, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.done < fraction * self.total:
            if self.error is not None:
                raise self.error
            if self._thread is not None and not self._thread.is_alive():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"load stuck at {self.done}/{self.total}")
            time.sleep(0.05)

    def join(self, timeout: float = 300) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "load did not finish"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            for pc in self.cases:
                self._post(pc, "/v1/cases", pc.body)
                time.sleep(self.pace_s)
            for pc in self.cases:
                for e in pc.later:
                    if pc.code is not None:
                        self._post(pc, f"/v1/cases/{pc.code}/events", e)
                    else:
                        self.done += 1
                    time.sleep(self.pace_s)
        except BaseException as exc:  # surfaced by wait_progress/join
            self.error = exc

    def _post(self, pc: PlannedCase, url: str, body: dict[str, Any]) -> None:
        self.sent += 1
        event_id = body["event_id"]
        deadline = time.monotonic() + self.give_up_s
        answers: list[Answer] = []
        while True:
            answers = self._send(url, body)
            final = [a for a in answers if a.status is not None and a.status < 500]
            if len(final) == len(answers) or (final and not self.twice):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.3)
        ok = [a for a in answers if a.status is not None and 200 <= a.status < 300]
        if self.twice:
            self.double_answers.append(tuple(a.status or 0 for a in answers))
            if len({orjson.dumps(a.body, option=orjson.OPT_SORT_KEYS) for a in ok}) > 1:
                self.different_bodies.append([a.body for a in ok])
        if ok:
            if url == "/v1/cases":
                codes = {a.body["case_code"] for a in ok}
                assert len(codes) == 1, f"one request, two cases: {codes}"
                pc.code = codes.pop()
            self.accepted[event_id] = pc.code or ""
        elif any(a.status is not None for a in answers):
            a = next(a for a in answers if a.status is not None)
            self.rejected.append((event_id, a.status or 0, a.body))
        else:
            self.unanswered.append(event_id)
        self.done += 1

    def _send(self, url: str, body: dict[str, Any]) -> list[Answer]:
        self.attempts += len(self.targets) if self.twice else 1
        if not self.twice:
            return [_answer(self.targets[self.attempts % len(self.targets)], url, body)]
        out: list[Answer] = [Answer(None)] * len(self.targets)
        start = threading.Barrier(len(self.targets))

        def one(i: int) -> None:
            start.wait()
            out[i] = _answer(self.targets[i], url, body)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(self.targets))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out


def _answer(client: httpx.Client, url: str, body: dict[str, Any]) -> Answer:
    try:
        r = client.post(url, json=body)
    except httpx.TransportError:
        return Answer(None)
    try:
        parsed = r.json()
    except ValueError:
        parsed = r.text
    return Answer(r.status_code, parsed)


def plan(n: int, seed: int) -> list[PlannedCase]:
    return scenario.plan(n, seed=seed, now=datetime.now(UTC))


@dataclass
class Outcome:
    sent: int
    accepted: int
    lost: int
    duplicated: int
    kpis_checked: int

    def row(self, **extra: Any) -> dict[str, Any]:
        return {"sent": self.sent, "accepted": self.accepted, "lost": self.lost,
                "duplicated": self.duplicated, "kpis_checked": self.kpis_checked, **extra}


def check_exactly_once(
    system: System, load: Load, *, extra_facts: list[dict[str, Any]] = (),  # type: ignore[assignment]
    intake: str = "intake",
) -> Outcome:
    """Every 2xx answered is on its case (once), nothing unasked is, and the KPIs equal the
    reference calculator's over those facts: nothing lost, nothing counted twice."""
    assert load.error is None
    intake_client = system.client(intake)
    accepted_cases = [pc for pc in load.cases if pc.code is not None]
    lost_on_cases: list[str] = []
    duplicated_on_cases: list[str] = []
    phantom: list[str] = []
    facts = scenario.facts(intake_client, accepted_cases)
    for pc in accepted_cases:
        history = intake_client.get(f"/v1/cases/{pc.code}").json()["history"]
        ids = Counter(h["event_id"] for h in history)
        duplicated_on_cases += [i for i, n in ids.items() if n > 1]
        asked = {pc.body["event_id"], *(e["event_id"] for e in pc.later)}
        for i in asked:
            if i in load.accepted and i not in ids:
                lost_on_cases.append(i)
        # A request that never got a final answer may still have committed: not a phantom.
        phantom += [h["event_id"] for h in history
                    if h["source"] != "/motcua/routing" and h["event_id"] not in load.accepted
                    and h["event_id"] not in load.unanswered]
    assert not phantom, f"recorded without a 2xx: {phantom[:5]}"

    all_facts = facts + list(extra_facts)
    expected = reference.compute(all_facts)
    provinces = {f"province:{f['province']}" for f in all_facts}
    queries = sorted({(s, p) for (_, s, p) in expected
                      if (s == "all" or s in provinces) and len(p) in (4, 7)})
    lost = duplicated = checked = 0
    mismatches: list[Any] = []
    metrics = system.client("metrics")
    for scope, period in queries:
        r = metrics.get("/v1/kpis", params={"scope": scope, "period": period, "kpi": KPI_NAMES})
        assert r.status_code == 200, r.text
        got = {i["kpi"]: (i["numerator"], i["denominator"]) for i in r.json()["items"]}
        for kpi in KPI_NAMES:
            want = expected[(kpi, scope, period)]
            checked += 1
            if got.get(kpi) != want:
                mismatches.append((kpi, scope, period, got.get(kpi), want))
            if scope == "all" and len(period) == 4 and kpi in ("received", "resolved",
                                                                 "returned"):
                diff = (got[kpi][0] or 0) - want[0]
                lost += max(0, -diff)
                duplicated += max(0, diff)
    outcome = Outcome(sent=load.sent, accepted=len(load.accepted),
                      lost=lost + len(lost_on_cases),
                      duplicated=duplicated + len(duplicated_on_cases), kpis_checked=checked)
    assert not lost_on_cases, f"2xx answered but not recorded: {lost_on_cases[:5]}"
    assert not duplicated_on_cases, f"recorded twice: {duplicated_on_cases[:5]}"
    assert not mismatches, f"{len(mismatches)} KPI figures differ, e.g. {mismatches[:5]}"
    assert outcome.lost == outcome.duplicated == 0
    return outcome
