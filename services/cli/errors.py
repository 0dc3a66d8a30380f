"""The failures a command reports in one line, and how it exits.

Every command lets these propagate; `reported` (around each operator command) prints the
message (no traceback) and exits with the code. A service that cannot be reached is
always named, with its URL.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from chancery.client.errors import (
    ChanceryError,
    Forbidden,
    NotFound,
    ProblemError,
    ServiceUnavailable,
    ServiceUnreachable,
    Unauthorized,
    failure_reason,
    transport_reason,
)
from chancery.client.errors import explanation as problem_detail

__all__ = [
    "BadInput",
    "CliError",
    "ServiceDown",
    "failure_reason",
    "problem_detail",
    "refusal",
    "reported",
    "transport_reason",
]

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


def refusal(exc: ChanceryError, *, not_found: str | None = None) -> CliError:
    """The one line a failure of a call to ingest or the API means to an operator."""
    service, url = exc.service, exc.url
    if isinstance(exc, ServiceUnreachable):
        return ServiceDown(service, url, exc.reason)
    if isinstance(exc, ServiceUnavailable):
        return ServiceDown(service, url, f"unavailable (503): {exc.explanation}")
    if isinstance(exc, Unauthorized | Forbidden):
        return CliError(
            f"{service} at {url} refused the API key ({exc.status}): {exc.explanation} "
            "(see --key-file / CHANCERY_KEY)"
        )
    if isinstance(exc, NotFound) and not_found:
        return CliError(f"{not_found} ({service} at {url}: {exc.explanation})")
    if isinstance(exc, ProblemError):
        return CliError(f"{service} at {url} answered {exc.status}: {exc.explanation}")
    return CliError(exc.message)


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Failures become one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            typer.echo(f"chancery: {exc.message}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except ChanceryError as exc:
            failure = refusal(exc)
            typer.echo(f"chancery: {failure.message}", err=True)
            raise typer.Exit(failure.exit_code) from None
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
