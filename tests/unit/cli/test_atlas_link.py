"""The link `make run` prints: the Atlas on the local API, signing the browser in."""

from __future__ import annotations

import pytest

from services.cli.devkeys import atlas_link

pytestmark = pytest.mark.unit


def test_with_auth_the_link_carries_the_key_as_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANCERY_API_PORT", "8102")
    assert atlas_link("chk_0123456789ab_key") == "http://127.0.0.1:8102/?token=chk_0123456789ab_key"


def test_without_auth_it_is_the_plain_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANCERY_AUTH_ENABLED", "false")
    monkeypatch.setenv("CHANCERY_API_HOST", "0.0.0.0")
    assert atlas_link("chk_0123456789ab_key") == "http://127.0.0.1:8002/"
