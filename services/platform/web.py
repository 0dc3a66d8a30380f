"""HTTP pieces both FastAPI services share: problem responses, correlation ids, auth.

Errors leave a service as RFC 9457 `application/problem+json` bodies. Each service maps
its own exceptions onto `Problem` in its `errors.py`; this module turns a `Problem`, a
request-validation error, an auth failure or an unexpected exception into the response,
so no route ever builds an error body by hand and nothing returns 200 with an error in it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chancery.auth import (
    AuthenticationError,
    Authenticator,
    JwtVerifier,
    PermissionDeniedError,
    Principal,
    utcnow,
)
from chancery.auth import (
    Scope as AuthScope,
)
from chancery.observability import correlation_id
from chancery.settings import AuthSettings

from .keyfile import WatchedKeyRing

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
CORRELATION_HEADER = "X-Correlation-ID"


@dataclass
class Problem(Exception):
    """An error with an HTTP status, a short title and a detail naming what is wrong."""

    status: int
    title: str
    detail: str
    errors: Sequence[Mapping[str, Any]] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = list(self.errors)
        cid = correlation_id.get()
        if cid:
            body["correlation_id"] = cid
        return body


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    return JSONResponse(
        problem.body(request.url.path),
        status_code=problem.status,
        headers=dict(problem.headers),
        media_type=PROBLEM_JSON,
    )


def field_path(loc: Sequence[int | str]) -> str:
    """`('body', 'data', 'legs', 2, 'country')` -> `data.legs[2].country`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors as `{field, message, type}` without echoing large inputs back."""
    return [
        {
            "field": field_path(tuple(e.get("loc", ()))),
            "message": str(e.get("msg", "invalid")),
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Map every error a request can end in to one problem response."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc.errors())
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return problem_response(
            request,
            Problem(422, "Invalid request", f"invalid value for: {fields}", errors=errors),
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            request,
            Problem(
                exc.status_code,
                _reason(exc.status_code),
                str(exc.detail),
                headers=dict(exc.headers or {}),
            ),
        )

    async def on_authentication(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            request,
            Problem(401, "Unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"}),
        )

    async def on_permission(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(request, Problem(403, "Forbidden", str(exc)))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request, Problem(500, "Internal Server Error", "an unexpected error occurred")
        )

    async def on_disconnect(request: Request, exc: Exception) -> JSONResponse:
        # The client left before its body was read: a client error, nobody to answer.
        logger.info("client left mid-request: %s %s", request.method, request.url.path)
        return problem_response(
            request, Problem(400, "Bad Request", "the client disconnected mid-request")
        )

    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(AuthenticationError, on_authentication)
    app.add_exception_handler(PermissionDeniedError, on_permission)
    app.add_exception_handler(Exception, on_unexpected)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class CorrelationIdMiddleware:
    """Pure ASGI: takes `X-Correlation-ID` (or `X-Request-ID`) or makes one, and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A random 32-hex-digit id, like uuid4().hex, without building a UUID per request.
        cid = incoming_correlation_id(scope.get("headers", [])) or os.urandom(16).hex()
        token = correlation_id.set(cid)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((CORRELATION_HEADER.lower().encode(), cid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        finally:
            correlation_id.reset(token)


def incoming_correlation_id(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The client's `X-Correlation-ID` (or `X-Request-ID`), if it is a usable one."""
    for name, value in headers:
        if name in (b"x-correlation-id", b"x-request-id"):
            text: str = value.decode("latin-1").strip()
            if 0 < len(text) <= 128 and text.isprintable():
                return text
    return None


def scope_dependency(
    authenticator: Callable[[Request], Authenticator], scope: AuthScope
) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: authenticate the request and require `scope`."""

    async def dependency(request: Request) -> Principal:
        principal = authenticator(request).authenticate(
            request.headers.get("authorization"), now=utcnow()
        )
        principal.require(scope)
        return principal

    return dependency


def authenticator_from(settings: AuthSettings) -> Authenticator:
    """The authenticator a service's settings describe (keys file, optional JWT secret).

    The keys file is followed: a key created or revoked while the service runs counts
    within about a second (services/platform/keyfile.py)."""
    # An empty CHANCERY_JWT_SECRET means "no JWTs", not an empty HMAC key.
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    secret = secret or None
    return Authenticator(
        keys=WatchedKeyRing(settings.api_keys_file),
        jwt=JwtVerifier(secret, settings.jwt_issuer, settings.jwt_audience) if secret else None,
        enabled=settings.auth_enabled,
    )
