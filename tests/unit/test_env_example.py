""".env.example lists every variable Chancery reads, and nothing it does not read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from chancery.settings import ApiSettings, DeliverSettings, IngestSettings, ProjectorSettings
from services.cli.local.supervisor import StackSettings
from services.cli.settings import CliSettings

from .test_compose import env_names

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
EVERY_SETTINGS: tuple[type[BaseSettings], ...] = (
    IngestSettings,
    ProjectorSettings,
    ApiSettings,
    DeliverSettings,
    StackSettings,
    CliSettings,
)


def listed() -> set[str]:
    names = set()
    for line in EXAMPLE.read_text().splitlines():
        match = re.match(r"^(CHANCERY_[A-Z0-9_]+)=", line)
        if match:
            names.add(match.group(1))
    return names


def read_by_some_process() -> set[str]:
    return {name for s in EVERY_SETTINGS for name in env_names(s).values()}


def test_every_variable_a_process_reads_is_listed() -> None:
    assert read_by_some_process() - listed() == set()


def test_every_listed_variable_is_read_by_some_process() -> None:
    assert listed() - read_by_some_process() == set()
