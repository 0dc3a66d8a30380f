"""HTTP/1.1 by hand over a loopback socket, for requests no client library will send:
bodies that trickle in, chunked bodies (well and badly framed), a Content-Length that lies,
bytes that are not UTF-8 where a path or a query should be.

`exchange` writes the request in pieces (with a pause between them, to be slow), reads the
answer (Content-Length, chunked, or up to the close) and returns it parsed; every step is
bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

READ_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps the last value
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_head(
    method: str, target: str, host: str, headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked(*pieces: bytes) -> list[bytes]:
    """The pieces as chunks, then the last chunk."""
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]


async def exchange(
    base_url: str,
    head: bytes,
    parts: Sequence[bytes] = (),
    *,
    pause_s: float = 0.0,
    timeout_s: float = READ_TIMEOUT_S,
) -> RawResponse:
    """Send `head` then each of `parts` (pausing `pause_s` before each), and read the answer.

    The server may answer, and close, before every part is sent (a body refused early):
    writing then fails, and the answer is read all the same.
    """
    url = urlsplit(base_url)
    assert url.hostname == "127.0.0.1", "loopback only"
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        async with asyncio.timeout(timeout_s):
            writer.write(head)
            await writer.drain()
            for part in parts:
                if pause_s:
                    await asyncio.sleep(pause_s)
                if reader.at_eof() or writer.is_closing():
                    break
                try:
                    writer.write(part)
                    await writer.drain()
                except (ConnectionResetError, BrokenPipeError):
                    break
            return await _read_response(reader)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> RawResponse:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection without an answer")
    _, status, _ = status_line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
    else:
        body = await reader.read()
    return RawResponse(int(status), headers, body)
