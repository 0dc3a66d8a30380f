"""CORS: Starlette's middleware, with a short way through for requests without an Origin.

Most reads come from servers and scripts, which send no `Origin`; for those Starlette's
CORSMiddleware only adds `Vary: Origin` to the response (so a cache keeps browser and
non-browser answers apart), yet it parses the request headers and rewrites the response
headers through its header classes to do so: a measurable share of a fast read. Here a
request without `Origin` gets exactly that header added, from the raw header list; every
request with one (simple or preflight) goes through Starlette's middleware unchanged.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ORIGIN = b"origin"
_VARY = b"vary"


class Cors:
    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        """`options`: those of Starlette's CORSMiddleware."""
        self.app = app
        self.full = CORSMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(name == _ORIGIN for name, _ in scope["headers"]):
            await self.full(scope, receive, send)
            return

        async def send_varying(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _vary_on_origin(list(message.get("headers", ())))
            await send(message)

        await self.app(scope, receive, send_varying)


def _vary_on_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`Vary: Origin` added as Starlette adds it: to the values of any Vary header already
    there, as one header in the place of the first."""
    found = [i for i, (name, _) in enumerate(headers) if name == _VARY]
    if not found:
        headers.append((_VARY, b"Origin"))
        return headers
    joined = b", ".join([*(headers[i][1] for i in found), b"Origin"])
    for i in reversed(found[1:]):
        del headers[i]
    headers[found[0]] = (_VARY, joined)
    return headers
