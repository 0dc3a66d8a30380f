"""Every operator command pointed at a closed port: one line naming the service, exit 1.

Also the commands that need no server: import --dry-run, and bad input.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.local import free_port
from services.cli.main import app

from .reference import GDELT1, GDELT2, ICEWS, extract

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def closed() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    return free_port()


@pytest.fixture
def env(closed: int, tmp_path: Path) -> dict[str, str]:
    return {
        "CHANCERY_INGEST_URL": f"http://127.0.0.1:{closed}",
        "CHANCERY_API_URL": f"http://127.0.0.1:{closed}",
        "CHANCERY_PROJECTOR_URL": f"http://127.0.0.1:{closed}",
        "CHANCERY_DELIVER_URL": f"http://127.0.0.1:{closed}",
        "CHANCERY_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}",
        "CHANCERY_REDIS_URL": f"redis://127.0.0.1:{closed}/0",
        "CHANCERY_KEY": "a-key",
        "CHANCERY_API_KEYS_FILE": str(tmp_path / "keys.json"),
    }


def run(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "service"),
    [
        (["relation", "CHN", "USA"], "API"),
        (["relation", "chn", "usa", "--as-of", "2023-05-01"], "API"),
        (["itinerary", "li-hui"], "API"),
        (["tail", "--type", "meeting.held", "--country", "CHN"], "API"),
        (["load", "seeds"], "ingest"),
        (["import", "gdelt", str(GDELT2)], "ingest"),
        (["import", "icews", str(ICEWS)], "ingest"),
        (["rebuild"], "Kafka"),
        (["dlq", "replay", "--dry-run"], "Kafka"),
    ],
)
def test_a_service_that_is_down_is_named_in_one_line(
    args: list[str], service: str, env: dict[str, str], closed: int
) -> None:
    code, out, err = run(args, env)
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.match(rf"chancery: {service} is not reachable at \S*127\.0\.0\.1:{closed}", lines[0])
    assert "Traceback" not in err


def test_status_shows_every_part_down_and_exits_1(env: dict[str, str], closed: int) -> None:
    code, out, err = run(["status"], env)
    assert code == 1
    for part in ("ingest", "API", "projector", "deliver", "Kafka", "Redis"):
        assert re.search(rf"^\s*{part}\s+DOWN\s+\S*{closed}\S*", out, re.MULTILINE), out
    assert err.strip().splitlines() == [
        f"chancery: 6 part(s) down: ingest (http://127.0.0.1:{closed}/readyz), "
        f"API (http://127.0.0.1:{closed}/readyz), projector (http://127.0.0.1:{closed}/status), "
        f"deliver (http://127.0.0.1:{closed}/status), "
        f"Kafka (127.0.0.1:{closed}), Redis (redis://127.0.0.1:{closed}/0)"
    ]


def test_status_as_json(env: dict[str, str]) -> None:
    import json

    code, out, _ = run(["status", "--json"], env)
    assert code == 1
    body = json.loads(out)
    parts = [c["part"] for c in body["checks"]]
    assert parts == ["ingest", "API", "projector", "deliver", "Kafka", "Redis"]
    assert not any(c["ok"] for c in body["checks"])


def test_flags_win_over_the_environment(env: dict[str, str]) -> None:
    other = free_port()
    code, _, err = run(["relation", "CHN", "USA", "--api-url", f"http://127.0.0.1:{other}"], env)
    assert code == 1
    assert f"API is not reachable at http://127.0.0.1:{other}" in err


@pytest.mark.parametrize(
    "command", [["rebuild"], ["status"], ["dlq", "replay", "--dry-run"]], ids=" ".join
)
def test_kafka_and_redis_flags_win_over_the_environment(
    env: dict[str, str], command: list[str]
) -> None:
    """docs/cli.md: `--kafka` for status, rebuild and dlq replay; `--redis-url` for the
    first two."""
    other = free_port()
    flags = ["--kafka", f"127.0.0.1:{other}"]
    if command[0] != "dlq":
        flags += ["--redis-url", f"redis://127.0.0.1:{other}/0"]
    code, _, err = run([*command, *flags], env)
    assert code == 1
    assert f"127.0.0.1:{other}" in err
    assert f"127.0.0.1:{env['CHANCERY_KAFKA_BOOTSTRAP_SERVERS'].rsplit(':')[-1]})" not in err


def test_a_missing_key_file_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    del env["CHANCERY_KEY"]
    code, _, err = run(["relation", "CHN", "USA", "--key-file", str(tmp_path / "nope")], env)
    assert code == 1
    assert err.strip() == (
        f"chancery: no API key: {tmp_path / 'nope'} does not exist (`chancery up` writes one; "
        "or set CHANCERY_KEY, or pass --key-file)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["relation", "CHN", "XYZ"], "'XYZ' is neither an ISO 3166-1 alpha-3 country code"),
        (["relation", "CHN", "USA", "--known-at", "yesterday"], "--known-at: 'yesterday'"),
        (["itinerary", "Li Hui"], "'Li Hui' is not a person id"),
        (["tail", "--type", "visit"], "--type: 'visit' is not an event type"),
        (["tail", "--country", "Mars"], "'Mars' is neither"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, env: dict[str, str]
) -> None:
    code, _, err = run(args, env)
    assert code == 2
    assert err.startswith(f"chancery: {message}")
    assert len(err.strip().splitlines()) == 1


def test_import_dry_run_prints_the_counts(env: dict[str, str]) -> None:
    code, out, _ = run(["import", "icews", "--dry-run", str(ICEWS)], env)
    assert code == 0
    assert out.splitlines()[:6] == [
        "icews: 1 file(s) (dry run: nothing sent)",
        "  rows read            3,705",
        "  rows to import       1,932",
        "  rows skipped         1,773",
        "    one side is not a state or a known organisation        175",
        "    the same state or organisation on both sides         1,598",
    ]
    assert "(1,932 event.coded, 227 meeting.held, 48 visit.leg.started)" in out


def test_import_refuses_gdelt_1_before_contacting_ingest(
    env: dict[str, str], tmp_path: Path
) -> None:
    plain = extract(GDELT1, tmp_path)
    code, out, err = run(["import", "gdelt", str(GDELT2), str(plain)], env)
    assert code == 1
    assert out == ""
    assert err.strip() == (
        f"chancery: {plain}: 58 columns: this is a GDELT 1.0 events file; `chancery import "
        "gdelt` takes GDELT 2.0 export files (61 columns)"
    )


def test_import_writes_the_skipped_rows_when_asked(env: dict[str, str], tmp_path: Path) -> None:
    skips = tmp_path / "skips.tsv"
    code, _, _ = run(["import", "gdelt", "--dry-run", "--skips", str(skips), str(GDELT2)], env)
    assert code == 0
    lines = skips.read_text().splitlines()
    assert len(lines) == 1658
    name, line, reason, detail = lines[0].split("\t")
    assert (name, reason) == (
        "gdelt2_export_20191024143000.tsv.zip:gdelt2_export_20191024143000.tsv",
        "one_sided",
    )
    assert line.isdigit()
    assert detail


def test_keys_dev_makes_the_development_key_once(env: dict[str, str], tmp_path: Path) -> None:
    """What compose's one-shot `dev-key` runs: a key with every scope, kept and reused."""
    from chancery.auth import ALL_SCOPES, KeyRing, utcnow

    env = {**env, "CHANCERY_KEY_FILE": str(tmp_path / "keys" / "dev-key")}
    code, first, err = run(["keys", "dev"], env)
    assert code == 0, err
    key = first.strip()
    assert (tmp_path / "keys" / "dev-key").read_text().strip() == key
    assert (tmp_path / "keys" / "dev-key").stat().st_mode & 0o777 == 0o600
    principal = KeyRing.load(tmp_path / "keys.json").verify(key, now=utcnow())
    assert principal.scopes == {scope.value for scope in ALL_SCOPES}
    code, again, _ = run(["keys", "dev"], env)
    assert (code, again.strip()) == (0, key)
