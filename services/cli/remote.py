"""Reading JSON from a Chancery service, every failure turned into one line that names it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import CliError, ServiceDown, problem_detail, transport_reason

READ_TIMEOUT_S = 15.0
POSITION_WAIT_S = 60.0


class NotYetApplied(CliError):
    """504: the read models did not reach `min_position` within the API's wait."""


def get_json(
    service: str,
    base_url: str,
    path: str,
    *,
    api_key: str | None = None,
    params: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    not_found: str | None = None,
    wait_s: float = 0.0,
) -> dict[str, Any]:
    """GET `base_url + path` and return its JSON object.

    Raises `ServiceDown` when nothing answers or the service says it is unavailable (503),
    `CliError` with the service's own explanation for any other refusal. With `wait_s`, a
    504 (`min_position` not applied yet; the API already waited) is asked again until then.
    """
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    deadline = time.monotonic() + wait_s
    with httpx.Client(
        base_url=base_url, headers=headers, timeout=READ_TIMEOUT_S, transport=transport
    ) as client:
        while True:
            try:
                response = client.get(path, params=dict(params or {}))
            except httpx.TransportError as exc:
                raise ServiceDown(service, base_url, transport_reason(exc)) from None
            try:
                return answer_of(service, base_url, response, not_found=not_found)
            except NotYetApplied:
                if time.monotonic() >= deadline:
                    raise


def answer_of(
    service: str, base_url: str, response: httpx.Response, *, not_found: str | None = None
) -> dict[str, Any]:
    """The JSON object of a 200; any other answer raises `refusal_of` it."""
    if response.status_code != 200:
        raise refusal_of(service, base_url, response, not_found=not_found)
    try:
        body = response.json()
    except ValueError:
        raise CliError(f"{service} at {base_url} answered 200 with no JSON") from None
    if not isinstance(body, dict):
        raise CliError(f"{service} at {base_url} answered 200 with JSON that is no object")
    return body


def refusal_of(
    service: str, base_url: str, response: httpx.Response, *, not_found: str | None = None
) -> CliError:
    """The error a non-200 answer means, with the service's own explanation."""
    status = response.status_code
    detail = problem_detail(response)
    if status == 503:
        return ServiceDown(service, base_url, f"unavailable (503): {detail}")
    if status in {401, 403}:
        return CliError(
            f"{service} at {base_url} refused the API key ({status}): {detail} "
            "(see --key-file / CHANCERY_KEY)"
        )
    if status == 504:
        return NotYetApplied(f"{service} at {base_url} answered 504: {detail}")
    if status == 404 and not_found:
        return CliError(f"{not_found} ({service} at {base_url}: {detail})")
    return CliError(f"{service} at {base_url} answered {status}: {detail}")
