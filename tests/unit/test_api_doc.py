"""docs/api.md lists every endpoint of ingest and the API, every parameter each takes, every
status each answers, and every scope: checked against the apps' own OpenAPI documents."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from chancery.auth import Scope
from chancery.settings import ApiSettings, IngestSettings
from services.api.app import create_app as create_api
from services.ingest.app import create_app as create_ingest

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SHARED_STATUSES = "## Statuses every read shares"
HEADERS = "## Headers"


def sections() -> dict[str, str]:
    """Each `### ...` heading's text, by each `METHOD /path` the heading names."""
    text = DOC.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.MULTILINE)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        for endpoint in re.findall(r"`((?:GET|POST|PUT|PATCH|DELETE) [^`]+)`", heading):
            found[endpoint] = body
    by_heading = dict(zip(parts[1::2], parts[2::2], strict=True))
    found[SHARED_STATUSES] = by_heading[SHARED_STATUSES]
    found[HEADERS] = by_heading[HEADERS]
    return found


def operations() -> list[tuple[str, dict[str, Any]]]:
    specs = (
        create_ingest(IngestSettings()).openapi(),
        create_api(ApiSettings()).openapi(),
    )
    return [
        (f"{method.upper()} {path}", operation)
        for spec in specs
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]


@pytest.mark.parametrize(("endpoint", "operation"), operations(), ids=lambda v: str(v)[:60])
def test_every_endpoint_its_parameters_and_statuses_are_listed(
    endpoint: str, operation: dict[str, Any]
) -> None:
    found = sections()
    assert endpoint in found, f"docs/api.md has no heading naming `{endpoint}`"
    text = found[endpoint]
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        if parameter["in"] == "path":
            continue  # in the heading
        if parameter["in"] == "header":
            assert f"**`{name}`**" in found[HEADERS], f"header {name} not explained"
            continue
        assert f"`{name}`" in text, f"{endpoint}: `{name}` missing"
    shared = found[SHARED_STATUSES]
    for status in operation.get("responses", {}):
        if status in ("200", "202") and endpoint.endswith(("healthz", "readyz", "metrics")):
            continue
        assert f"`{status}`" in text or f"`{status}`" in shared, f"{endpoint}: {status} missing"


def test_every_scope_is_explained() -> None:
    text = DOC.read_text(encoding="utf-8")
    for scope in Scope:
        assert re.search(rf"^\| `{re.escape(scope.value)}` \| \w", text, re.MULTILINE), scope


def test_the_headers_are_explained() -> None:
    text = DOC.read_text(encoding="utf-8")
    for header in (
        "Chancery-Position",
        "Chancery-Lag",
        "Chancery-Read-Model-Version",
        "Chancery-Min-Position",
        "ETag",
        "If-None-Match",
        "Retry-After",
        "Last-Event-ID",
        "X-Correlation-ID",
    ):
        assert f"**`{header}`**" in text, header
