"""The harness that starts services as processes: a port someone else holds is not taken for
ours, and a process that dies for another reason fails the start at once, with its log."""

import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

from tests.harness import answers_as, start_processes


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}


def test_a_port_held_by_someone_else_is_given_up_for_a_fresh_one(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        given: list[int] = []

        def command(name: str, port: int) -> list[str]:
            given.append(port)
            # The first start binds the held port, as a server racing a neighbour would.
            return [sys.executable, "-m", "motcua.cli", "up", "--data-dir",
                    str(tmp_path / "data"), "--port", str(held if len(given) == 1 else port)]

        (proc, port), = start_processes(["up"], command, _env(), tmp_path, timeout=60,
                                        component={"up": "metrics"}).values()
        try:
            log = (tmp_path / "up.log").read_text()
            assert "address already in use" in log.lower()
            assert len(given) == 2 and port == given[1] != held
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                assert answers_as(client, "metrics") and answers_as(client, "intake")
                assert not answers_as(client, "statistics")
        finally:
            proc.terminate()
            proc.wait(30)


def test_a_process_that_dies_otherwise_fails_the_start_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(AssertionError) as failed:
        start_processes(["metrics"], lambda name, port: [
            sys.executable, "-m", "motcua.cli", name, "--port", f"{port}x"], _env(), tmp_path)
    assert "metrics exited (2)" in str(failed.value)
    assert "--port" in str(failed.value)  # the command line's own complaint, from the log
