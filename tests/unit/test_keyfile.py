"""A service's keys follow the keys file: a key created or revoked counts at the next check
(at most a second later), a half-written or broken file never lets a service down, and the
file is only ever replaced whole."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chancery.auth import (
    AuthenticationError,
    KeyRing,
    Scope,
    key_id_of,
    new_api_key,
)
from services.platform.keyfile import POLL_S, WatchedKeyRing

pytestmark = pytest.mark.unit

NOW = datetime.now(UTC)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def _key(name: str = "reader") -> tuple[str, KeyRing]:
    key, record = new_api_key(name, [Scope.EVENTS_READ], now=NOW)
    return key, KeyRing([record])


def test_a_key_created_counts_once_the_file_is_looked_at_again(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    clock = Clock()
    ring = WatchedKeyRing(keys_file, clock=clock)  # no file yet: no keys
    key, created = _key()
    created.save(keys_file)
    with pytest.raises(AuthenticationError):
        ring.verify(key, now=NOW)  # within the poll interval: not looked at yet
    clock.now += POLL_S
    assert ring.verify(key, now=NOW).subject == "reader"
    assert ring.generation == 1


def test_a_key_revoked_is_refused_and_finding_it_fails_too(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    key, ring_on_disk = _key()
    ring_on_disk.save(keys_file)
    clock = Clock()
    ring = WatchedKeyRing(keys_file, clock=clock)
    key_id = key_id_of(key)
    assert key_id is not None
    assert ring.find(key_id) is not None
    ring_on_disk.remove(key_id)
    ring_on_disk.save(keys_file)
    clock.now += POLL_S
    assert ring.find(key_id) is None  # what a session cookie is checked against
    with pytest.raises(AuthenticationError):
        ring.verify(key, now=NOW)


def test_an_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    _, on_disk = _key()
    on_disk.save(keys_file)
    clock = Clock()
    ring = WatchedKeyRing(keys_file, clock=clock)
    for _ in range(5):
        clock.now += POLL_S
        assert ring.refresh() == 0


def test_a_broken_file_keeps_the_keys_the_ring_had(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    key, on_disk = _key()
    on_disk.save(keys_file)
    clock = Clock()
    ring = WatchedKeyRing(keys_file, clock=clock)
    keys_file.write_text("[{not json")
    clock.now += POLL_S
    assert ring.verify(key, now=NOW).subject == "reader"
    other, fixed = _key("writer")
    fixed.save(keys_file)  # fixed: read again
    clock.now += POLL_S
    assert ring.verify(other, now=NOW).subject == "writer"
    with pytest.raises(AuthenticationError):
        ring.verify(key, now=NOW)


def test_a_file_removed_holds_no_keys(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    key, on_disk = _key()
    on_disk.save(keys_file)
    clock = Clock()
    ring = WatchedKeyRing(keys_file, clock=clock)
    keys_file.unlink()
    clock.now += POLL_S
    with pytest.raises(AuthenticationError):
        ring.verify(key, now=NOW)


def test_saving_replaces_the_file_whole_and_private(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    _, first = _key()
    first.save(keys_file)
    before = keys_file.stat().st_ino
    _, second = _key("writer")
    second.save(keys_file)
    assert keys_file.stat().st_ino != before  # a new file renamed over the old one
    assert keys_file.stat().st_mode & 0o777 == 0o600
    assert [k["name"] for k in json.loads(keys_file.read_text())] == ["writer"]
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temporary file left


def test_a_key_id_is_found_in_a_key_or_given_as_is() -> None:
    key, _ = _key()
    key_id = key.split("_")[1]
    assert key_id_of(key) == key_id
    assert key_id_of(key_id) == key_id
    assert key_id_of("li-hui") is None
