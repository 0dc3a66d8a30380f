"""Where the operator commands find the services, and the API key they send.

Each value comes from a command-line flag, else a `CHANCERY_*` variable, else the local
default: the services' own settings (`CHANCERY_INGEST_PORT`, ...), so a stack started by
`chancery up` with some ports changed is still found.

| what      | flag              | variable                  | default                        |
|-----------|-------------------|---------------------------|--------------------------------|
| ingest    | `--ingest-url`    | `CHANCERY_INGEST_URL`     | `http://127.0.0.1:8001` (1)    |
| API       | `--api-url`       | `CHANCERY_API_URL`        | `http://127.0.0.1:8002` (1)    |
| projector | `--projector-url` | `CHANCERY_PROJECTOR_URL`  | `http://127.0.0.1:8003` (1)    |
| deliver   | `--deliver-url`   | `CHANCERY_DELIVER_URL`    | `http://127.0.0.1:8004` (1)    |
| API key   | `--key-file`      | `CHANCERY_KEY` (the key), | `.chancery/dev-key`            |
|           |                   | `CHANCERY_KEY_FILE`       |                                |

(1) the port is the service's own setting: CHANCERY_INGEST_PORT, _API_PORT, _PROJECTOR_PORT,
_DELIVER_PORT.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from chancery.settings import (
    ApiSettings,
    ChancerySettings,
    DeliverSettings,
    IngestSettings,
    ProjectorSettings,
)

from .errors import CliError

DEV_KEY_FILE = Path(".chancery/dev-key")


class CliSettings(ChancerySettings):
    """What only the `chancery` command reads, from CHANCERY_* variables (or `.env`)."""

    ingest_url: str | None = None
    api_url: str | None = None
    projector_url: str | None = None
    deliver_url: str | None = None
    key: SecretStr | None = None
    key_file: Path = DEV_KEY_FILE


def _probe(host: str) -> str:
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104 - a client


def _clean(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"not an http(s) URL: {url!r}")
    return url


def ingest_url(flag: str | None = None) -> str:
    if flag:
        return _clean(flag)
    if configured := CliSettings().ingest_url:
        return _clean(configured)
    settings = IngestSettings()
    return f"http://{_probe(settings.host)}:{settings.port}"


def api_url(flag: str | None = None) -> str:
    if flag:
        return _clean(flag)
    if configured := CliSettings().api_url:
        return _clean(configured)
    settings = ApiSettings()
    return f"http://{_probe(settings.host)}:{settings.port}"


def projector_url(flag: str | None = None) -> str:
    if flag:
        return _clean(flag)
    if configured := CliSettings().projector_url:
        return _clean(configured)
    settings = ProjectorSettings()
    return f"http://{_probe(settings.status_host)}:{settings.status_port}"


def deliver_url(flag: str | None = None) -> str:
    if flag:
        return _clean(flag)
    if configured := CliSettings().deliver_url:
        return _clean(configured)
    settings = DeliverSettings()
    return f"http://{_probe(settings.status_host)}:{settings.status_port}"


def api_key(key_file: Path | None = None) -> str:
    """The key from `--key-file`, else CHANCERY_KEY, else CHANCERY_KEY_FILE's file."""
    settings = CliSettings()
    if key_file is None and settings.key is not None and settings.key.get_secret_value().strip():
        return settings.key.get_secret_value().strip()
    path = key_file or settings.key_file
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise CliError(
            f"no API key: {path} does not exist (`chancery up` writes one; or set "
            "CHANCERY_KEY, or pass --key-file)"
        ) from None
    except OSError as exc:
        raise CliError(f"cannot read the API key file {path}: {exc.strerror}") from None
    if not key:
        raise CliError(f"the API key file {path} is empty")
    return key
