"""`chancery keys create | list | revoke` on a keys file of the test's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chancery.auth import KeyRing
from services.cli.main import app

pytestmark = pytest.mark.unit


def run(args: list[str], keys_file: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args, env={"CHANCERY_API_KEYS_FILE": str(keys_file)})
    return result.exit_code, result.stdout, result.stderr


def test_a_key_is_created_listed_and_revoked(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    code, out, _ = run(["keys", "create", "newsroom", "-s", "events:read"], keys_file)
    assert code == 0
    key = out.strip()
    key_id = key.split("_")[1]
    code, out, _ = run(["keys", "list"], keys_file)
    assert code == 0
    assert out.startswith(f"{key_id}  newsroom")
    assert "events:read" in out
    assert key not in out  # only its digest is kept
    code, out, _ = run(["keys", "list", "--json"], keys_file)
    assert [k["key_id"] for k in json.loads(out)] == [key_id]
    code, out, _ = run(["keys", "revoke", key_id], keys_file)
    assert (code, out.strip()) == (0, f"revoked {key_id} (newsroom)")
    assert len(KeyRing.load(keys_file)) == 0


def test_a_key_can_be_revoked_by_the_key_itself(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    _, key, _ = run(["keys", "create", "importer", "-s", "events:write"], keys_file)
    code, out, _ = run(["keys", "revoke", key.strip()], keys_file)
    assert code == 0
    assert key.strip() not in out  # the key is never printed back
    assert len(KeyRing.load(keys_file)) == 0


def test_revoking_an_unknown_key_says_so(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    code, _, err = run(["keys", "revoke", "0123456789ab"], keys_file)
    assert code == 1
    assert err.strip() == f"chancery: no key 0123456789ab in {keys_file}"
    code, _, err = run(["keys", "revoke", "li-hui"], keys_file)
    assert code == 2
    assert err.strip().startswith("chancery: 'li-hui' is neither a key id")
