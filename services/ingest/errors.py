"""Ingest's failures, mapped to HTTP in this one place."""

from __future__ import annotations

from services.platform.web import Problem

from .service import ConflictError, IngestError, UnavailableError, UnknownTargetError

REASONS: dict[int, str] = {
    400: "malformed_json",
    401: "unauthenticated",
    403: "forbidden",
    408: "body_timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    503: "unavailable",
}


def to_problem(exc: IngestError, *, retry_after_s: int) -> Problem:
    if isinstance(exc, ConflictError):
        return Problem(
            409,
            "Conflict",
            "an event with the same source and id was accepted with different content; "
            "give the new content a new id",
            errors=exc.conflicts,
        )
    if isinstance(exc, UnknownTargetError):
        return Problem(
            422,
            "Invalid event",
            "a retraction names an event it cannot retract; nothing was published",
            exc.problems,
        )
    if isinstance(exc, UnavailableError):
        return Problem(
            503,
            "Service Unavailable",
            f"{exc.reason}; nothing was reported written that is not, retry the same request",
            headers={"Retry-After": str(retry_after_s)},
        )
    raise AssertionError(f"unmapped ingest error {type(exc).__name__}")


def rejection_reason(problem: Problem) -> str:
    return REASONS.get(problem.status, str(problem.status))
