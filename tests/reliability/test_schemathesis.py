"""Scenario 5, first part: schemathesis against both OpenAPI documents, over real HTTP.

One stack (ingest, the live projector, the API) on the session's Kafka and Redis, the
seeds loaded so that reads have something to answer. Every operation of each document is
sent positive and negative cases, and the documents' own examples (several hundred cases
per service), authenticated with a real key, and every schemathesis check runs on every
answer (tests/reliability/fuzzing.py).

No answer may be a 5xx. No check may fail, except where a document is known to say less
than the service checks:
- `positive_data_acceptance` on operations whose parameters the service validates beyond
  what the document can say (a country code must be an assigned ISO 3166-1 code, a person
  id a slug, an event's fields agree with each other, a batch is not empty): the generator
  draws "valid" values the service rightly refuses with 422;
- `content_type_conformance` on GET /metrics, documented as JSON but Prometheus text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.e2e.conftest import seed_events

from .fuzzing import Tally, fuzz
from .stack import Services, StackFactory

pytestmark = [
    pytest.mark.reliability,
    # schemathesis draws with `random` inside its strategies (its business, not ours)
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

OPEN_OPERATIONS = {"GET /healthz", "GET /readyz", "GET /metrics"}
KNOWN_GAPS = {
    "RejectedPositiveData: Schema-valid request rejected",  # on operations with parameters
}
METRICS_TEXT = ("GET /metrics", "UndefinedContentType: Undocumented Content-Type")


def unexpected_failures(tally: Tally) -> dict[tuple[str, str], str]:
    return {
        (operation, kind): example
        for (operation, kind), example in tally.failures.items()
        if not (kind in KNOWN_GAPS and operation not in OPEN_OPERATIONS)
        and (operation, kind) != METRICS_TEXT
    }


@pytest_asyncio.fixture(loop_scope="session")
async def seeded(stack: StackFactory) -> AsyncIterator[Services]:
    async with stack(api={"max_streams_per_client": 100}) as services:
        await services.load(seed_events())
        yield services


@pytest.mark.timeout(600)
async def test_ingest_openapi_fuzzed_gives_no_5xx(seeded: Services) -> None:
    tally: Tally = await asyncio.to_thread(
        fuzz,
        seeded.ingest_url,
        f"Bearer {seeded.keys.write}",
        examples_per_mode={"POST /v1/events": 100, "POST /v1/events/batch": 100},
        default_examples=10,
    )
    print(tally.report())
    assert tally.server_errors == []
    assert unexpected_failures(tally) == {}
    assert tally.cases["POST /v1/events"] >= 300
    assert tally.cases["POST /v1/events/batch"] >= 300
    seeded.projector_alive()


@pytest.mark.timeout(600)
async def test_api_openapi_fuzzed_gives_no_5xx(seeded: Services) -> None:
    tally: Tally = await asyncio.to_thread(
        fuzz,
        seeded.api_url,
        f"Bearer {seeded.keys.read}",
        examples_per_mode={"GET /v1/stream": 15, "GET /healthz": 5, "GET /metrics": 5},
        default_examples=40,
    )
    print(tally.report())
    assert tally.server_errors == []
    assert unexpected_failures(tally) == {}
    assert tally.total >= 500
    assert set(tally.cases) >= {"GET /v1/stream", "GET /v1/relations/{a}/{b}"}
