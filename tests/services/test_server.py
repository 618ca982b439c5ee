"""The HTTP server's protocol (services/server.py): each response in one write, nothing lost.

The server is real uvicorn on a real socket; only the count of writes is recorded, by a
transport between the protocol and the socket's own.
"""

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import StreamingResponse

from services.server import OneWriteHttpToolsProtocol, OneWriteTransport
from tests.harness import server_thread

BIG = b"0123456789abcdef" * 65_536  # 1 MiB: more than a socket takes at once


class _Recorder:
    """Counts what reaches the socket transport, and passes it on."""

    def __init__(self, transport: asyncio.Transport, writes: list[int]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(len(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/json")
    def json() -> dict[str, str]:
        return {"hồ_sơ": "Đã tiếp nhận"}

    @app.get("/big")
    def big() -> Response:
        return Response(BIG, media_type="application/octet-stream")

    @app.get("/stream")
    def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for i in range(3):
                await asyncio.sleep(0.01)  # each part in a later step of the loop
                yield f"part {i};".encode()

        return StreamingResponse(parts(), media_type="text/plain")

    return app


@contextmanager
def _server() -> Iterator[tuple[int, list[int]]]:
    writes: list[int] = []

    class Recording(OneWriteHttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_Recorder(transport, writes))  # type: ignore[arg-type]

    with server_thread(_app(), "server-test", http=Recording) as (port, _loop):
        yield port, writes


def _read_response(sock: socket.socket, buffer: bytearray) -> bytes:
    """One whole response (content-length or chunked) off a keep-alive connection."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65_536)
        assert chunk, f"connection closed mid-headers: {bytes(buffer)!r}"
        buffer += chunk
    head, _, _rest = bytes(buffer).partition(b"\r\n\r\n")
    headers = head.lower()
    start = len(head) + 4
    if b"transfer-encoding: chunked" in headers:
        while b"\r\n0\r\n\r\n" not in buffer[start - 2:]:
            chunk = sock.recv(65_536)
            assert chunk, "connection closed mid-body"
            buffer += chunk
        end = buffer.index(b"\r\n0\r\n\r\n", start - 2) + 7
    else:
        length = int(headers.split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(buffer) < start + length:
            chunk = sock.recv(65_536)
            assert chunk, "connection closed mid-body"
            buffer += chunk
        end = start + length
    response = bytes(buffer[:end])
    del buffer[:end]
    return response


def _get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: t\r\n{extra}\r\n".encode()


def test_each_response_is_one_write_and_keep_alive_answers_every_request() -> None:
    with _server() as (port, writes), socket.create_connection(("127.0.0.1", port)) as sock:
        buffer = bytearray()
        for _ in range(3):
            before = len(writes)
            sock.sendall(_get("/json"))
            response = _read_response(sock, buffer)
            assert response.startswith(b"HTTP/1.1 200 OK\r\n")
            assert response.endswith('{"hồ_sơ":"Đã tiếp nhận"}'.encode())
            # Status line, headers and body together: uvicorn alone writes twice.
            assert len(writes) - before == 1
            assert writes[-1] == len(response)
        # Two requests sent at once (pipelined) are answered in order.
        sock.sendall(_get("/json") + _get("/big"))
        first, second = _read_response(sock, buffer), _read_response(sock, buffer)
        assert first.endswith('"Đã tiếp nhận"}'.encode())
        assert second.startswith(b"HTTP/1.1 200 OK\r\n") and second.endswith(BIG)


def test_a_streamed_response_arrives_whole_and_in_order() -> None:
    with _server() as (port, _writes), socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_get("/stream"))
        response = _read_response(sock, bytearray())
        body = response.split(b"\r\n\r\n", 1)[1]
        parts = [p for p in body.split(b"\r\n") if p.startswith(b"part")]
        assert b"".join(parts) == b"part 0;part 1;part 2;"


def test_what_is_written_before_a_close_reaches_the_client() -> None:
    with _server() as (port, _writes):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_get("/big", "connection: close\r\n"))
            received = b"".join(iter(lambda: sock.recv(65_536), b""))  # until the server closes
            assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(BIG)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            received = b"".join(iter(lambda: sock.recv(65_536), b""))
            assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")
            assert received.endswith(b"Invalid HTTP request received.")


class _Socketish:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


def test_the_transport_joins_a_steps_writes_flushes_on_close_and_drops_on_abort() -> None:
    async def scenario() -> None:
        real = _Socketish()
        one = OneWriteTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        one.write(b"head ")
        one.write(bytearray(b"body"))
        one.write(b"")
        assert real.sent == [] and one.get_write_buffer_size() == 7 + 9
        await asyncio.sleep(0)
        assert real.sent == [b"head body"]
        assert one.get_extra_info("peername") == "extra peername"
        one.write(b"last words")
        one.close()  # before the loop's next step: sent first, then closed
        assert real.sent == [b"head body", b"last words"] and real.closed
        await asyncio.sleep(0)
        assert len(real.sent) == 2  # nothing sent twice

        real = _Socketish()
        one = OneWriteTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        one.write(b"never")
        one.abort()
        await asyncio.sleep(0)
        assert real.sent == [] and real.aborted

    asyncio.run(scenario())
