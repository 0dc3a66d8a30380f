"""The CORS middleware's short way (no Origin) answers exactly as Starlette's does."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send

from services.api.cors import Cors

pytestmark = pytest.mark.unit

OPTIONS: dict[str, Any] = {
    "allow_origins": ["https://app.example"],
    "allow_methods": ["GET"],
    "allow_headers": ["Authorization"],
    "expose_headers": ["ETag"],
    "max_age": 600,
}


def _app(headers: list[tuple[bytes, bytes]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def _call(middleware: Any, request_headers: list[tuple[bytes, bytes]]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/relations/CHN/USA",
        "headers": request_headers,
        "query_string": b"",
    }
    await middleware(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    "response_headers",
    [
        [(b"content-type", b"application/json")],
        [(b"vary", b"Accept"), (b"etag", b'W/"x"')],
        [(b"vary", b"Accept"), (b"etag", b'W/"x"'), (b"vary", b"Authorization")],
    ],
)
@pytest.mark.parametrize(
    "request_headers",
    [
        [(b"authorization", b"Bearer x")],
        [(b"origin", b"https://app.example")],
        [(b"origin", b"https://elsewhere.example")],
    ],
)
async def test_the_same_response_as_starlettes(
    response_headers: list[tuple[bytes, bytes]], request_headers: list[tuple[bytes, bytes]]
) -> None:
    ours = await _call(Cors(_app(response_headers), **OPTIONS), request_headers)
    theirs = await _call(CORSMiddleware(_app(response_headers), **OPTIONS), request_headers)
    assert ours == theirs
