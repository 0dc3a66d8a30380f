"""Fixtures of the reliability and security suite (issue 8).

Every test here is marked `reliability` (each module sets it), so `pytest -m reliability`
runs the suite alone. The longest scenarios are also marked `reliability_long`: `make test`
leaves them out and `make reliability` runs everything (see the Makefile).

- `keys`, `authenticator`: API keys (read, write, and one with the admin scope only) and a
  JWT verifier, made for the module (tests/e2e/conftest.py's `make_keys`);
- `dedicated_kafka`: a broker of the module's own, for tests that stop it (stopping the
  session's broker would break every session-scoped client);
- `dedicated_redis`: a Redis server of the test's own, for tests that kill it;
- `stack_db`: a fresh database on the session's Redis; `databases`, to take several;
- `stack`: `running(...)` (tests/reliability/stack.py) on the session's Kafka, `stack_db`
  and the module's keys; a test passes only what it changes.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from chancery.auth import Authenticator
from services.cli.local import KafkaServer, RedisServer, free_ports
from tests.e2e.conftest import Keys, make_keys
from tests.servers import _Databases, private_kafka

from .stack import StackFactory, running


@pytest.fixture(scope="module")
def _keyring() -> tuple[Keys, Authenticator]:
    return make_keys()


@pytest.fixture(scope="module")
def keys(_keyring: tuple[Keys, Authenticator]) -> Keys:
    return _keyring[0]


@pytest.fixture(scope="module")
def authenticator(_keyring: tuple[Keys, Authenticator]) -> Authenticator:
    return _keyring[1]


@pytest.fixture(scope="session")
def databases(_redis_databases: _Databases) -> _Databases:
    """The session Redis's databases, for tests that need several (each `take()` is one)."""
    return _redis_databases


@pytest.fixture
def stack_db(_redis_databases: _Databases) -> str:
    """One more empty database on the session's Redis."""
    return _redis_databases.take()


@pytest.fixture
def stack(
    kafka_bootstrap: str, stack_db: str, keys: Keys, authenticator: Authenticator
) -> StackFactory:
    """`running(...)` on the session's Kafka, a fresh database and the module's keys."""
    return functools.partial(
        running,
        bootstrap=kafka_bootstrap,
        redis_url=stack_db,
        keys=keys,
        authenticator=authenticator,
    )


@pytest.fixture(scope="module")
def dedicated_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    with private_kafka(tmp_path_factory.mktemp("kafka-own")) as server:
        yield server


@pytest.fixture
def dedicated_redis(tmp_path: Path) -> Iterator[RedisServer]:
    (port,) = free_ports(1)
    server = RedisServer(port=port, data_dir=tmp_path / "redis-own", persistence="none")
    with server:
        yield server
