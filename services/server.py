"""The HTTP server's protocol: uvicorn's httptools protocol, each response sent in one write.

uvicorn writes a response's status line and headers, then its body, each straight to the
socket: two `send` system calls and two TCP segments for every answer, when the body follows
the headers in the same step of the event loop anyway. Here the writes of one step are joined
and sent once, at the end of that step: for single-case intake that was 8 % of the server's
CPU a request (docs/benchmarks.md, fifteenth pass).

`bench/intake_http.py` runs its bare FastAPI baseline on this protocol as well: the same
server, so the ratio compares the applications.
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# For uvicorn's `--http` option, e.g. the benchmark's baseline.
PROTOCOL = "services.server:OneWriteHttpToolsProtocol"


class OneWriteTransport:
    """A socket transport whose writes within one event-loop step go out as one.

    Everything but writing, closing and the buffer size goes to the real transport. Closing
    sends what is held first; an abort drops it, as it drops the real transport's buffer."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if not self._held:
            return
        data = b"".join(self._held) if len(self._held) > 1 else self._held[0]
        self._held.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWriteTransport(transport, self.loop))  # type: ignore[arg-type]
