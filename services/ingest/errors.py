"""Ingest's failures, mapped to HTTP in this one place."""

from __future__ import annotations

from services.platform.web import Problem

from .service import ConflictError, IngestError, UnavailableError, UnknownTargetError


def to_problem(exc: IngestError, *, retry_after_s: int) -> Problem:
    if isinstance(exc, ConflictError):
        return Problem(
            409,
            "Conflict",
            "an event with the same source and id was accepted with different content",
            errors=exc.conflicts,
        )
    if isinstance(exc, UnknownTargetError):
        return Problem(422, "Invalid event", "a retraction names an unknown event", exc.problems)
    if isinstance(exc, UnavailableError):
        return Problem(
            503,
            "Service Unavailable",
            f"{exc.reason}; nothing was reported written that is not, retry the same request",
            headers={"Retry-After": str(retry_after_s)},
        )
    raise AssertionError(f"unmapped ingest error {type(exc).__name__}")


def rejection_reason(problem: Problem) -> str:
    reasons: dict[int, str] = {
        400: "malformed_json",
        401: "unauthenticated",
        403: "forbidden",
        409: "conflict",
        413: "too_large",
        415: "unsupported_media_type",
        422: "invalid",
        503: "unavailable",
    }
    return reasons.get(problem.status, str(problem.status))
