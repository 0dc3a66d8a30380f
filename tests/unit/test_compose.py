"""docker-compose.yml cannot run here (no Docker engine, nor the compose plugin), so this
checks what can be checked without them: the file against the Compose Specification's JSON
Schema (the copy check-jsonschema vendors), the services and how they start, the Dockerfile's
build stages and user against what compose builds and mounts, and the variables each service
gets against its settings classes, with names taken from the classes themselves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, AliasPath
from pydantic_settings import BaseSettings

from chancery.settings import (
    ApiSettings,
    AuthSettings,
    CommonSettings,
    DeliverSettings,
    IngestSettings,
    ProjectorSettings,
)
from services.cli.settings import CliSettings

pytestmark = pytest.mark.unit

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
DOCKERFILE = COMPOSE.parent / "Dockerfile"
FIVE = {"kafka", "redis", "ingest", "projector", "api"}
SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "projector": ProjectorSettings,
    "api": ApiSettings,
    "deliver": DeliverSettings,
    "topics": CommonSettings,
}
# The one-shot jobs run `chancery` commands: the variables they get are those commands'.
JOBS: dict[str, tuple[type[BaseSettings], ...]] = {
    "dev-key": (AuthSettings, CliSettings),
    "seeds": (CliSettings,),
}
BUILT = sorted({*SETTINGS, *JOBS})
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


def test_the_file_follows_the_compose_specification() -> None:
    """What `docker compose config` would refuse: unknown keys, wrong shapes and types."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", BUILT)
def test_services_are_built_from_a_stage_of_the_one_dockerfile(
    compose: dict[str, Any], name: str
) -> None:
    build = compose["services"][name]["build"]
    assert {key: build[key] for key in ("context", "dockerfile")} == {
        "context": ".",
        "dockerfile": "Dockerfile",
    }
    assert build["target"] in dockerfile_stages(), "compose builds a stage the Dockerfile lacks"
    assert "image" not in compose["services"][name], "built here, not pulled"


def dockerfile_stages() -> dict[str, list[str]]:
    """Each named build stage of the Dockerfile -> its instructions (continuations joined)."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?$", line, re.IGNORECASE)
        if match:
            current = []
            stages[match.group(1) or f"stage-{len(stages)}"] = current
        current.append(line)
    return stages


def image_user(stage: list[str]) -> tuple[str, int]:
    """The user a stage's image runs as, and its uid (from its `useradd --uid`)."""
    users = [line.split()[1] for line in stage if line.upper().startswith("USER ")]
    assert users, "the image runs as root"
    name = users[-1]
    uids = [
        int(match.group(1))
        for line in stage
        if (match := re.search(rf"useradd\b.*--uid\s+(\d+)\b.*\s{name}\b", line))
    ]
    assert uids, f"no `useradd --uid N ... {name}` in the stage"
    return name, uids[0]


def owned_directories(stage: list[str], user: str) -> set[str]:
    """The directories a stage creates owned by `user` (`install -d -o USER ... DIR...`)."""
    owned: set[str] = set()
    for line in stage:
        for command in re.findall(r"install\s+-d\s[^&;]*", line):
            words = command.split()
            if "-o" in words and words[words.index("-o") + 1] == user:
                owned |= {word for word in words if word.startswith("/")}
    return owned


@pytest.mark.parametrize("name", BUILT)
def test_the_images_user_can_read_and_write_what_is_mounted(
    compose: dict[str, Any], name: str
) -> None:
    """Bind mounts bring the host's owners and modes (a 0600 key file of the host's user is
    unreadable to uid 10001): every mount is a named volume, mounted where the image has a
    directory its user owns, so a new volume starts owned by that user, and the key files
    the one-shot job writes there (0600) belong to the uid that reads them."""
    service = compose["services"][name]
    stage = dockerfile_stages()[service["build"]["target"]]
    user, uid = image_user(stage)
    assert uid == 10001
    assert service.get("user") in (None, user, str(uid)), "every service runs as the image's user"
    owned = owned_directories(stage, user)
    mounts: dict[str, bool] = {}
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), "short syntax: source:target[:mode]"
        source, target, *mode = volume.split(":")
        assert source in (compose.get("volumes") or {}), f"{volume}: a bind mount, not a volume"
        assert target in owned, f"{target} is not a directory the image's user owns"
        mounts[target] = mode != ["ro"]
    env = environment(service)
    for variable in ("CHANCERY_API_KEYS_FILE", "CHANCERY_KEY_FILE"):
        if variable in env:
            folder = str(Path(env[variable]).parent)
            assert folder in mounts, f"{variable}={env[variable]} is in no mounted volume"
    if name == "dev-key":
        assert all(mounts.values()), "the key job writes the keys"
    else:
        assert not any(mounts.values()), "services only read the keys"


def test_the_keys_are_made_before_they_are_read_and_used(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for reader in ("ingest", "api"):
        assert services[reader]["depends_on"]["dev-key"] == {
            "condition": "service_completed_successfully"
        }
    assert services["dev-key"]["command"] == ["chancery", "keys", "dev"]
    assert services["seeds"]["command"] == ["chancery", "load", "seeds"]
    assert services["seeds"]["depends_on"]["ingest"] == {"condition": "service_healthy"}
    assert services["seeds"]["restart"] == services["dev-key"]["restart"] == "no"
    # The job sends the key the dev-key job wrote, to ingest's port inside the network.
    seeds, keys = environment(services["seeds"]), environment(services["dev-key"])
    assert seeds["CHANCERY_KEY_FILE"] == keys["CHANCERY_KEY_FILE"]
    assert (
        keys["CHANCERY_API_KEYS_FILE"] == environment(services["ingest"])["CHANCERY_API_KEYS_FILE"]
    )
    ingest_port = environment(services["ingest"])["CHANCERY_INGEST_PORT"]
    assert seeds["CHANCERY_INGEST_URL"] == f"http://ingest:{ingest_port}"


def test_the_image_holds_the_seeds_the_job_loads() -> None:
    runtime = dockerfile_stages()["runtime"]
    workdir = [line.split()[1] for line in runtime if line.upper().startswith("WORKDIR ")][-1]
    assert f"COPY seeds {workdir}/seeds" in runtime
    assert not any(
        line.strip() in {"seeds", "seeds/"}
        for line in (COMPOSE.parent / ".dockerignore").read_text().splitlines()
    )


@pytest.mark.parametrize("name", sorted(JOBS))
def test_every_variable_of_a_job_is_a_setting_of_its_command(
    compose: dict[str, Any], name: str
) -> None:
    known = {variable for s in JOBS[name] for variable in env_names(s).values()}
    given = {key for key in environment(compose["services"][name]) if key.startswith("CHANCERY_")}
    assert given <= known, f"{name}: not read by its command: {given - known}"


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
