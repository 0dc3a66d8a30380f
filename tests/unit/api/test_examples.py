"""The OpenAPI examples are what the API answers over the article's events on its day."""

from __future__ import annotations

from typing import Any

import pytest

from services.api import examples
from tests.unit.api.conftest import ApiFactory

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "url"), list(examples.EXAMPLE_URLS.items()))
async def test_each_example_is_what_the_api_answers(api: ApiFactory, name: str, url: str) -> None:
    example: dict[str, Any] = getattr(examples, name)
    async with api() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.json() == example
