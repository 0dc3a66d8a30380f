"""docker-compose.yml cannot run here (no Docker engine), so this checks what can be checked:
it parses, runs the five services the right way, and hands each service every variable its
settings class needs, with names taken from chancery/settings.py itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, AliasPath
from pydantic_settings import BaseSettings

from chancery.settings import (
    ApiSettings,
    CommonSettings,
    DeliverSettings,
    IngestSettings,
    ProjectorSettings,
)

pytestmark = pytest.mark.unit

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
FIVE = {"kafka", "redis", "ingest", "projector", "api"}
SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "projector": ProjectorSettings,
    "api": ApiSettings,
    "deliver": DeliverSettings,
    "topics": CommonSettings,
}
# Shared settings that must be the same in every service.
SHARED = ("kafka_bootstrap_servers", "topic", "dead_letter_topic", "redis_url")
LOOPBACK = ("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def env_names(settings: type[BaseSettings]) -> dict[str, str]:
    """Field name -> the environment variable that sets it (as pydantic-settings reads it)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field_name, info in settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names[field_name] = alias.upper()
        elif isinstance(alias, AliasChoices):
            names[field_name] = str(alias.choices[0]).upper()
        elif isinstance(alias, AliasPath):
            pytest.fail(f"{settings.__name__}.{field_name}: AliasPath is not an env variable")
        else:
            names[field_name] = f"{prefix}{field_name}".upper()
    return names


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key).upper(): str(value) for key, value in env.items()}


def test_parses_and_names_the_five_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= FIVE


def test_kafka_is_the_official_image_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = environment(kafka)
    assert kafka["image"].startswith("apache/kafka:4.")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "ZOOKEEPER" not in " ".join(env)
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_services_are_built_from_the_one_dockerfile(compose: dict[str, Any], name: str) -> None:
    build = compose["services"][name]["build"]
    assert build == {"context": ".", "dockerfile": "Dockerfile"}
    assert (COMPOSE.parent / build["dockerfile"]).is_file()


@pytest.mark.parametrize("name", sorted(FIVE))
def test_every_service_has_a_healthcheck(compose: dict[str, Any], name: str) -> None:
    check = compose["services"][name]["healthcheck"]
    assert check["test"]
    assert check.get("retries", 0) >= 3


@pytest.mark.parametrize(
    ("name", "needs"),
    [
        ("ingest", {"kafka": "service_healthy", "redis": "service_healthy"}),
        ("projector", {"kafka": "service_healthy", "redis": "service_healthy"}),
        ("api", {"redis": "service_healthy"}),
        ("deliver", {"kafka": "service_healthy", "redis": "service_healthy"}),
    ],
)
def test_services_wait_for_what_they_use(
    compose: dict[str, Any], name: str, needs: dict[str, str]
) -> None:
    depends = compose["services"][name]["depends_on"]
    assert isinstance(depends, dict), "depends_on needs the long form to carry conditions"
    for dependency, condition in needs.items():
        assert depends[dependency]["condition"] == condition
    for dependency, spec in depends.items():
        assert spec["condition"] in {"service_healthy", "service_completed_successfully"}
        assert dependency in compose["services"]


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_variable_is_a_setting_of_that_service(compose: dict[str, Any], name: str) -> None:
    known = set(env_names(SETTINGS[name]).values())
    given = {key for key in environment(compose["services"][name]) if key.startswith("CHANCERY_")}
    assert given <= known, f"{name}: not settings of {SETTINGS[name].__name__}: {given - known}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_loopback_default_is_overridden(compose: dict[str, Any], name: str) -> None:
    """A default that means "this machine" is wrong in a container: compose must set it."""
    settings = SETTINGS[name]
    env = environment(compose["services"][name])
    names = env_names(settings)
    needed = {
        names[field]
        for field, info in settings.model_fields.items()
        if any(host in str(info.default) for host in LOOPBACK)
    }
    assert needed, "the settings no longer have loopback defaults: revisit this test"
    assert needed <= set(env), f"{name} lacks {needed - set(env)}"
    for variable in needed:
        assert not any(host in env[variable] for host in LOOPBACK), variable


def test_services_share_the_log_and_the_read_models(compose: dict[str, Any]) -> None:
    for field in SHARED:
        values = set()
        for name, settings in SETTINGS.items():
            variable = env_names(settings)[field]
            env = environment(compose["services"][name])
            assert variable in env, f"{name} lacks {variable}"
            values.add(env[variable])
        assert len(values) == 1, f"{field} differs between services: {values}"
    ingest = environment(compose["services"]["ingest"])
    assert ingest[env_names(IngestSettings)["kafka_bootstrap_servers"]].startswith("kafka:")
    assert ingest[env_names(IngestSettings)["redis_url"]].startswith("redis://redis:")


@pytest.mark.parametrize(
    ("name", "port_field"),
    [
        ("ingest", "port"),
        ("api", "port"),
        ("projector", "status_port"),
        ("deliver", "status_port"),
    ],
)
def test_ports_agree_with_the_healthcheck_and_the_published_port(
    compose: dict[str, Any], name: str, port_field: str
) -> None:
    service = compose["services"][name]
    port = environment(service)[env_names(SETTINGS[name])[port_field]]
    assert f"{port}:{port}" in service["ports"]
    assert f":{port}/healthz" in " ".join(service["healthcheck"]["test"])
