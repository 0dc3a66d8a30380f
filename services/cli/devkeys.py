"""API keys on this machine: create and revoke them, and the development key `make run`
prints. Running services follow the keys file: a change counts there within seconds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from chancery.auth import (
    ALL_SCOPES,
    AuthenticationError,
    KeyRing,
    Scope,
    StoredKey,
    key_id_of,
    new_api_key,
    utcnow,
)


def create_key(keys_file: Path, name: str, scopes: Iterable[Scope]) -> str:
    """Add a key to the keys file (only its digest is stored) and return the key itself."""
    ring = KeyRing.load(keys_file)
    key, record = new_api_key(name, scopes, now=utcnow())
    ring.add(record)
    ring.save(keys_file)
    return key


def revoke_key(keys_file: Path, key: str) -> StoredKey | None:
    """Take the key out of the keys file: `key` is its id, or the key itself. The key
    removed, or None when the file holds no such key (or `key` names none)."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    ring = KeyRing.load(keys_file)
    removed = ring.remove(key_id)
    if removed is not None:
        ring.save(keys_file)
    return removed


def list_keys(keys_file: Path) -> list[StoredKey]:
    return sorted(KeyRing.load(keys_file), key=lambda k: (k.created, k.key_id))


def ensure_dev_key(keys_file: Path, dev_key_file: Path) -> str:
    """The local development key with every scope, created once and kept in `dev_key_file`.

    Reused while its digest is still in the keys file; otherwise a new one is made.
    """
    ring = KeyRing.load(keys_file)
    if dev_key_file.exists():
        key = dev_key_file.read_text().strip()
        with contextlib.suppress(AuthenticationError):  # gone or expired: make a new one
            ring.verify(key, now=utcnow())
            return key
    key = create_key(keys_file, "development", ALL_SCOPES)
    dev_key_file.parent.mkdir(parents=True, exist_ok=True)
    dev_key_file.write_text(key + "\n")
    dev_key_file.chmod(0o600)
    return key


def atlas_link(key: str) -> str:
    """The Atlas's address on the local API; with auth on, a link that signs the browser in
    with `key` (the API sets a session cookie and drops the token from the address)."""
    from urllib.parse import urlencode

    from chancery.settings import ApiSettings

    api = ApiSettings()
    host = "127.0.0.1" if api.host in {"0.0.0.0", "::", ""} else api.host  # noqa: S104
    base = f"http://{host}:{api.port}/"
    return f"{base}?{urlencode({'token': key})}" if api.auth_enabled else base
