"""Each setting answers to exactly one variable, the one .env.example names, and a `.env`
file in the working directory is read, below the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from chancery.settings import ApiSettings, IngestSettings, ProjectorSettings
from services.cli.local.supervisor import StackSettings
from services.cli.settings import CliSettings

from .test_compose import env_names

pytestmark = pytest.mark.unit

EVERY_SETTINGS: tuple[type[BaseSettings], ...] = (
    IngestSettings,
    ProjectorSettings,
    ApiSettings,
    StackSettings,
    CliSettings,
)


@pytest.fixture(autouse=True)
def _no_chancery_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CHANCERY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env but the one a test writes


def test_the_projector_does_not_take_ingests_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANCERY_MAX_BATCH_EVENTS", "7")
    assert IngestSettings().max_batch_events == 7
    assert ProjectorSettings().max_batch_events == 4000
    monkeypatch.setenv("CHANCERY_PROJECTOR_BATCH_EVENTS", "9")
    assert ProjectorSettings().max_batch_events == 9


@pytest.mark.parametrize("settings", EVERY_SETTINGS, ids=lambda s: s.__name__)
def test_an_aliased_setting_ignores_its_field_names_variable(
    monkeypatch: pytest.MonkeyPatch, settings: type[BaseSettings]
) -> None:
    """CHANCERY_HOST, CHANCERY_PORT, CHANCERY_STATUS_PORT... set nothing."""
    names = env_names(settings)
    aliased = {
        field: f"CHANCERY_{field.upper()}"
        for field, variable in names.items()
        if variable != f"CHANCERY_{field.upper()}"
    }
    if settings in (IngestSettings, ProjectorSettings, ApiSettings):
        assert aliased, "these classes have aliased fields: revisit this test"
    defaults = settings()
    for field, by_name in aliased.items():
        default = getattr(defaults, field)
        monkeypatch.setenv(by_name, "7" if isinstance(default, int) else "10.9.9.9")
    assert settings() == defaults


@pytest.mark.parametrize("settings", EVERY_SETTINGS, ids=lambda s: s.__name__)
def test_code_still_builds_settings_by_field_name(settings: type[BaseSettings]) -> None:
    """Tests and tools pass `status_port=...`, not the variable's name."""
    for field, info in settings.model_fields.items():
        if field == "min_insync_replicas":  # may not exceed replication_factor
            continue
        if isinstance(info.default, int) and not isinstance(info.default, bool):
            values: dict[str, Any] = {field: info.default + 1}
            built = settings(**values)
            assert getattr(built, field) == info.default + 1


def test_dotenv_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "CHANCERY_API_PORT=9100\nCHANCERY_PROJECTOR_BATCH_EVENTS=123\n"
        "CHANCERY_KEY_FILE=keys/dev\nCHANCERY_STATE_DIR=state\nCHANCERY_MAX_BATCH_EVENTS=5\n"
    )
    assert ApiSettings().port == 9100
    assert ProjectorSettings().max_batch_events == 123
    assert IngestSettings().max_batch_events == 5
    assert CliSettings().key_file == Path("keys/dev")
    assert StackSettings().state_dir == Path("state")
    monkeypatch.setenv("CHANCERY_API_PORT", "9200")
    assert ApiSettings().port == 9200
