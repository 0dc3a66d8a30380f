"""Schemathesis over a running service: every operation of its OpenAPI document, positive and
negative cases, every check schemathesis has, and a tally of what came back.

Schemathesis 4's Python API (read from the installed package): `openapi.from_url` loads the
document the running app serves; each operation's `as_strategy(mode)` draws `Case`s, which
`case.call(base_url=..., headers=...)` sends over real HTTP and `case.validate_response`
checks with every check enabled in the (default) config: not_a_server_error,
status_code_conformance, content_type_conformance, response_headers_conformance,
response_schema_conformance, positive_data_acceptance, negative_data_rejection,
missing_required_header, unsupported_method, ignored_auth, use_after_free,
ensure_resource_availability, object_level_authorization, allow_header_conformance.
The examples the document carries are sent too.

This is blocking code (requests): a test runs it in a worker thread while the services it
calls run in the test loop.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.failures import ServerError as ServerErrorFailure
from schemathesis.core.result import Ok
from schemathesis.openapi.checks import UndefinedStatusCode

SERVER_ERROR_CODES = frozenset({ServerErrorFailure.code, UndefinedStatusCode.code})
STREAM_TIMEOUT_S = 0.5  # an event stream is read for this long, then closed
TIMEOUT_S = 15.0


@dataclass(frozen=True)
class ServerError:
    status: int
    operation: str
    query: dict[str, Any]
    curl: str


@dataclass
class Tally:
    """What a run sent and what came back, per operation."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    server_errors: list[ServerError] = field(default_factory=list)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # (op, kind) -> example

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def report(self) -> str:
        lines = [f"{self.total} cases"]
        for op, n in sorted(self.cases.items()):
            lines.append(f"  {op}: {n} cases, statuses {dict(sorted(self.statuses[op].items()))}")
        for (op, kind), example in sorted(self.failures.items()):
            lines.append(f"  FAILED {kind} on {op}: {example}")
        return "\n".join(lines)


def fuzz(
    base_url: str,
    authorization: str,
    *,
    examples_per_mode: dict[str, int],
    default_examples: int,
) -> Tally:
    """Every operation of the document at `base_url`/openapi.json, positive and negative."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    tally = Tally()
    headers = {"Authorization": authorization}
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise AssertionError(f"{base_url}: an operation schemathesis cannot read: {result}")
        operation = result.ok()
        label = operation.label
        n = examples_per_mode.get(label, default_examples)
        streaming = operation.path.endswith("/stream")
        timeout = STREAM_TIMEOUT_S if streaming else TIMEOUT_S

        one = _sender(tally, label, base_url, headers, timeout)
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(mode)
            run = settings(
                max_examples=n,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(given(case=strategy)(one))
            try:
                run()
            except Unsatisfiable:  # nothing to make negative (no parameter, no body)
                assert mode is schemathesis.GenerationMode.NEGATIVE, label
        for strategy in schema.get_strategies_from_examples(operation):
            settings(
                max_examples=5,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(given(case=strategy)(one))()
    return tally


def _sender(
    tally: Tally, label: str, base_url: str, headers: dict[str, str], timeout: float
) -> Any:
    """The body of the property: send one case, tally its status, run every check."""

    def one(case: Any) -> None:
        tally.cases[label] += 1
        response = case.call(base_url=base_url, headers=headers, timeout=timeout)
        tally.statuses[label][response.status_code] += 1
        if response.status_code >= 500:
            curl = case.as_curl_command(headers=headers)
            query = dict(case.query or {})
            tally.server_errors.append(ServerError(response.status_code, label, query, curl))
        try:
            case.validate_response(
                response,
                headers=headers,
                transport_kwargs={"base_url": base_url, "headers": headers, "timeout": timeout},
            )
        except FailureGroup as group:
            _record(tally, label, case, list(group.exceptions), headers, response.status_code)
        except Failure as failure:
            _record(tally, label, case, [failure], headers, response.status_code)

    return one


def _record(
    tally: Tally,
    label: str,
    case: Any,
    failures: list[Failure],
    headers: dict[str, str],
    status: int,
) -> None:
    for failure in failures:
        if status >= 500 and failure.code in SERVER_ERROR_CODES:
            continue  # a 5xx is tallied as such (server_errors), not as a check failure
        key = (label, f"{type(failure).__name__}: {failure.title}")
        if key not in tally.failures:
            message = " ".join(str(failure.message).split())[:400]
            tally.failures[key] = f"{message} | {case.as_curl_command(headers=headers)[:600]}"
