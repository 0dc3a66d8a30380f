"""What can go wrong, as exceptions a caller can catch by kind.

- `ServiceUnreachable`: nothing answered (connection refused, timed out, reset...), after
  the retries the client's settings allow.
- `ProblemError` and one subclass per status the services answer with: the service said no,
  and said why in an RFC 9457 problem (`title`, `detail`, and for ingest the per-event
  `errors`, each naming the event's index and field). `problem` keeps every member, the
  extensions too (the API's `rebuilding` progress, the positions of a 504).
- `UnexpectedAnswer`: an answer the client cannot read (not JSON, not an event stream, not
  the shape the API documents).

Every error names the service and its URL, and says how long the client waited on retries
before giving up (`waited_s`).
"""

from __future__ import annotations

import socket
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from .retrying import retry_after_s

PROBLEM_TEXT_LIMIT = 300


class FieldError(BaseModel):
    """One thing wrong with a request: ingest names the event (`index`, `id`) and `field`."""

    model_config = ConfigDict(frozen=True, extra="allow")

    index: int | None = None
    id: str | None = None
    field: str | None = None
    message: str | None = None
    type: str | None = None


class Problem(BaseModel):
    """An RFC 9457 problem, with whatever extension members the service added."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str = "about:blank"
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    errors: tuple[FieldError, ...] = ()
    correlation_id: str | None = None


class ChanceryError(Exception):
    """Base of every error the client raises."""

    def __init__(self, message: str, *, service: str, url: str) -> None:
        super().__init__(message)
        self.message = message
        self.service = service
        self.url = url
        self.waited_s = 0.0
        """How long the client waited between attempts before it gave up (0: no retry)."""

    @property
    def reason(self) -> str:
        """The failure in a few words, as a retry notice gives it."""
        return self.message


class ServiceUnreachable(ChanceryError):
    """No answer: the connection failed or timed out."""

    def __init__(self, *, service: str, url: str, reason: str) -> None:
        super().__init__(f"{service} is not reachable at {url}: {reason}", service=service, url=url)
        self._reason = reason

    @property
    def reason(self) -> str:
        return self._reason


class UnexpectedAnswer(ChanceryError):
    """An answer the client cannot read."""


class ProblemError(ChanceryError):
    """The service refused the request and said why (RFC 9457 problem details)."""

    status_code: ClassVar[int | None] = None

    def __init__(
        self,
        *,
        service: str,
        url: str,
        status: int,
        problem: Problem,
        explanation: str,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(
            f"{service} at {url} answered {status}: {explanation}", service=service, url=url
        )
        self.status = status
        self.problem = problem
        self.explanation = explanation
        """The problem's `detail`, else its `title`, else the start of the body."""
        self.retry_after_s = retry_after_s
        """What the answer's `Retry-After` asked for, if it said."""

    @property
    def title(self) -> str | None:
        return self.problem.title

    @property
    def detail(self) -> str | None:
        return self.problem.detail

    @property
    def errors(self) -> tuple[FieldError, ...]:
        return self.problem.errors

    @property
    def reason(self) -> str:
        return f"{self.status}: {self.explanation}"


class BadRequest(ProblemError):
    status_code = 400


class Unauthorized(ProblemError):
    """401: no credential, or one the service does not know (revoked, expired)."""

    status_code = 401


class Forbidden(ProblemError):
    """403: the credential lacks the scope (events:write to post, events:read to read)."""

    status_code = 403


class NotFound(ProblemError):
    status_code = 404


class Conflict(ProblemError):
    """409: an event with the same source and id was accepted with other content."""

    status_code = 409


class Gone(ProblemError):
    """410: a stream resume point older than what the stream keeps."""

    status_code = 410


class PayloadTooLarge(ProblemError):
    status_code = 413


class UnsupportedMediaType(ProblemError):
    status_code = 415


class InvalidRequest(ProblemError):
    """422: an invalid event (`errors` names each by index and field) or parameter."""

    status_code = 422


class TooManyRequests(ProblemError):
    """429: too many open streams for this credential."""

    status_code = 429


class ServiceUnavailable(ProblemError):
    """503: Kafka unreachable (ingest), or the read models being rebuilt (API)."""

    status_code = 503


class NotYetApplied(ProblemError):
    """504: the read models did not reach `min_position` within the API's wait."""

    status_code = 504


_BY_STATUS: dict[int, type[ProblemError]] = {
    cls.status_code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        Gone,
        PayloadTooLarge,
        UnsupportedMediaType,
        InvalidRequest,
        TooManyRequests,
        ServiceUnavailable,
        NotYetApplied,
    )
    if cls.status_code is not None
}


def problem_of(service: str, url: str, response: httpx.Response) -> ProblemError:
    """The error an answer other than the expected one means, with the service's own words."""
    body = _json(response)
    problem = Problem()
    if isinstance(body, dict):
        try:
            problem = Problem.model_validate(body)
        except ValidationError:  # not quite a problem: keep what reads as one
            problem = Problem(
                title=_text(body.get("title")), detail=_text(body.get("detail")), **_extra(body)
            )
    cls = _BY_STATUS.get(response.status_code, ProblemError)
    return cls(
        service=service,
        url=url,
        status=response.status_code,
        problem=problem,
        explanation=explanation(response),
        retry_after_s=retry_after_s(response.headers.get("retry-after")),
    )


def explanation(response: httpx.Response) -> str:
    """The `detail` (else `title`, else `message`) of a problem answer, else the start of
    the body, else the status's reason phrase."""
    body = _json(response)
    if isinstance(body, dict):
        for key in ("detail", "title", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:PROBLEM_TEXT_LIMIT]
    text = " ".join(response.text.split())
    return text[:PROBLEM_TEXT_LIMIT] or response.reason_phrase


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _extra(body: dict[str, Any]) -> dict[str, Any]:
    known = set(Problem.model_fields)
    return {k: v for k, v in body.items() if k not in known and isinstance(k, str)}


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
