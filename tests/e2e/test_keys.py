"""Keys without restarts, on the running services (processes of their own, tests/e2e/processes.py):
a key made with `chancery keys create` works within 5 s, at ingest and at the API; revoked with
`chancery keys revoke`, it stops working within 5 s, and so do the Atlas sessions it opened.

Each check asks again until the answer changes or 5 s have passed since the command returned:
a bound on how long the services may take, not a measure of how fast they are.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.e2e.processes import ROOT, Services, running_services
from tests.servers import _Databases
from tests.unit.domain.builders import meeting

pytestmark = pytest.mark.e2e

WITHIN_S = 5.0


@pytest.fixture(scope="module")
def services(
    kafka_bootstrap: str,
    _redis_databases: _Databases,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Services]:
    with running_services(
        kafka_bootstrap, _redis_databases.take(), tmp_path_factory.mktemp("keys-stack")
    ) as running:
        yield running


def chancery(services: Services, *args: str) -> str:
    """Run `chancery *args` on the stack's keys file; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=services.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def within(seconds: float, answers: Callable[[], bool]) -> bool:
    """Whether `answers()` held at some point within `seconds` (asked every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while True:
        if answers():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def event_json() -> str:
    source = f"https://keys.e2e/{uuid.uuid4().hex[:8]}"
    event = meeting("talks", "2023-06-01", "SWE", "FIN").model_copy(update={"source": source})
    return event.model_dump_json(exclude_none=True)


def posts(services: Services, key: str) -> int:
    return httpx.post(
        f"{services.ingest_url}/v1/events",
        content=event_json(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"},
        timeout=10,
    ).status_code


def reads(services: Services, key: str) -> int:
    return httpx.get(
        f"{services.api_url}/v1/relations/SWE/FIN",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ).status_code


def test_a_key_created_works_and_revoked_stops_working(services: Services) -> None:
    key = chancery(
        services, "keys", "create", "newsroom", "-s", "events:read", "-s", "events:write"
    )
    key = key.strip()
    assert within(WITHIN_S, lambda: posts(services, key) == 202 and reads(services, key) == 200)
    # Read repeatedly meanwhile, so the API keeps this key as verified: revoking must win.
    assert reads(services, key) == 200
    key_id = key.split("_")[1]
    assert chancery(services, "keys", "revoke", key_id).startswith(f"revoked {key_id}")
    assert within(WITHIN_S, lambda: posts(services, key) == 401 and reads(services, key) == 401)
    # The stack's other keys are untouched.
    assert reads(services, services.read_key) == 200
    assert posts(services, services.write_key) == 202


def test_a_revoked_key_ends_the_atlas_sessions_it_opened(services: Services) -> None:
    key = chancery(services, "keys", "create", "browser", "-s", "events:read").strip()
    assert within(WITHIN_S, lambda: reads(services, key) == 200)
    with httpx.Client(base_url=services.api_url, timeout=10) as browser:
        signed_in = browser.get("/", params={"token": key})  # the link `make run` prints
        assert signed_in.status_code == 303, signed_in.text
        assert browser.cookies.get("chancery_session")

        def page_reads() -> int:
            return browser.get(
                "/v1/relations/SWE/FIN", headers={"Sec-Fetch-Site": "same-origin"}
            ).status_code

        assert page_reads() == 200
        chancery(services, "keys", "revoke", key)
        assert within(WITHIN_S, lambda: page_reads() == 401)
