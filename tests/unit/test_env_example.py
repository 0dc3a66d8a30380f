""".env.example lists every variable Chancery reads, and nothing it does not read: the
settings classes' variables, and those read straight from the environment in services/,
chancery/ and infra/ (os.environ in Python, ${...} in the shell scripts)."""

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

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"
EVERY_SETTINGS: tuple[type[BaseSettings], ...] = (
    IngestSettings,
    ProjectorSettings,
    ApiSettings,
    DeliverSettings,
    StackSettings,
    CliSettings,
)
PYTHON_READ = re.compile(r"""(?:environ(?:\.get)?|getenv)\s*[\(\[]\s*["'](CHANCERY_[A-Z0-9_]+)""")
SHELL_READ = re.compile(r"\$\{?(CHANCERY_[A-Z0-9_]+)")
# The section of .env.example for what only the environment sets (no settings class reads
# them, so a .env file does not reach them).
ENVIRONMENT_ONLY = "read from the environment only"


def listed() -> dict[str, bool]:
    """Every variable .env.example sets -> whether it is in the environment-only section."""
    names: dict[str, bool] = {}
    environment_only = False
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("# ---"):
            environment_only = ENVIRONMENT_ONLY in line
        match = re.match(r"^(CHANCERY_[A-Z0-9_]+)=", line)
        if match:
            names[match.group(1)] = environment_only
    return names


def read_by_settings() -> set[str]:
    return {name for s in EVERY_SETTINGS for name in env_names(s).values()}


def read_from_the_environment() -> dict[str, set[str]]:
    """Variables read outside the settings classes -> the files that read them."""
    found: dict[str, set[str]] = {}
    sources = [
        *(
            (path, PYTHON_READ)
            for folder in ("services", "chancery")
            for path in (ROOT / folder).rglob("*.py")
        ),
        *((path, SHELL_READ) for path in (ROOT / "infra").rglob("*.sh")),
    ]
    for path, pattern in sources:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("#"):
                continue
            for name in pattern.findall(line):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_what_the_code_reads() -> None:
    """Guards the scan itself: these are read with os.environ and ${...} today."""
    found = read_from_the_environment()
    assert {"CHANCERY_DEBUG", "CHANCERY_INFRA_DIR", "CHANCERY_CACHE_DIR"} <= set(found)
    assert "CHANCERY_MVN_ARGS" in found


def test_every_variable_a_settings_class_reads_is_listed() -> None:
    assert read_by_settings() - set(listed()) == set()


def test_every_variable_read_from_the_environment_is_listed_as_such() -> None:
    direct = set(read_from_the_environment()) - read_by_settings()
    example = listed()
    assert direct - set(example) == set(), read_from_the_environment()
    misplaced = {name for name in direct if not example[name]}
    assert misplaced == set(), f"not in the '{ENVIRONMENT_ONLY}' section: {misplaced}"


def test_every_listed_variable_is_read_by_some_process() -> None:
    assert set(listed()) - read_by_settings() - set(read_from_the_environment()) == set()


def test_the_environment_only_section_holds_no_setting() -> None:
    """A settings class reads .env too: its variables belong to the other sections."""
    only = {name for name, environment_only in listed().items() if environment_only}
    assert only & read_by_settings() == set()
