"""The failures a command reports in one line, and how it exits.

Every command lets these propagate; `reported` (around each operator command) prints the
message (no traceback) and exits with the code. A service that cannot be reached is
always named, with its URL.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import httpx
import typer

P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """A failure the operator can act on: printed as one line, then exit `exit_code`."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(CliError):
    """An argument or option the command cannot use (exit 2, like a usage error)."""

    exit_code = 2


class ServiceDown(CliError):
    """A service did not answer, or answered that it is unavailable."""

    def __init__(self, service: str, url: str, why: str) -> None:
        super().__init__(f"{service} is not reachable at {url}: {why}")
        self.service = service
        self.url = url


def failure_reason(exc: BaseException) -> str:
    """A short reason for a failure to reach a server: "connection refused", "timed out"...

    Walks the exception's causes: clients wrap the socket error in their own types.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or getattr(seen, "errno", None) == 111:
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "unknown host"
        if isinstance(seen, TimeoutError | httpx.TimeoutException):
            return "timed out"
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "refused" in text.lower() or "errno 111" in text.lower() or "error 111" in text.lower():
        return "connection refused"
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def transport_reason(exc: httpx.TransportError) -> str:
    """A short reason for a transport failure ("connection refused", "timed out")."""
    reason = failure_reason(exc)
    if isinstance(exc, httpx.ConnectError) and reason.startswith("ConnectError"):
        return "cannot connect"
    return reason


def problem_detail(response: httpx.Response, *, limit: int = 300) -> str:
    """The `detail` (else `title`) of a problem+json answer, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("detail", "title", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:limit]
    text = " ".join(response.text.split())
    return text[:limit] or response.reason_phrase


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Failures become one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            typer.echo(f"chancery: {exc.message}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:
            if os.environ.get("CHANCERY_DEBUG"):
                raise
            typer.echo(
                f"chancery: unexpected {type(exc).__name__}: {exc} "
                "(CHANCERY_DEBUG=1 shows the traceback)",
                err=True,
            )
            raise typer.Exit(1) from None

    return wrapper
