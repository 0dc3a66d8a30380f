"""Fixtures of the command-line tests: the real reference files, mapped once per session."""

from __future__ import annotations

import pytest

from services.cli.importers.datasets import Gdelt, Icews

from .reference import GDELT2, ICEWS, Mapping, map_file


@pytest.fixture(scope="session")
def gdelt_rows() -> Mapping:
    return map_file(Gdelt(), GDELT2)


@pytest.fixture(scope="session")
def icews_rows() -> Mapping:
    return map_file(Icews(), ICEWS)
