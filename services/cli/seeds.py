"""Loading seed events through ingest's HTTP API, the same path as real traffic."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .errors import CliError
from .ingest_client import BatchRefused, IngestClient, merge_positions

SEEDS_DIR = Path("seeds")
BATCH = 500


@dataclass(frozen=True)
class LoadReport:
    files: int
    events: int
    position: str | None  # covers every seed event: usable as min_position


def seed_files(folder: Path = SEEDS_DIR) -> list[Path]:
    return sorted(folder.glob("*.jsonl"))


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CliError(f"{path}:{number}: not JSON: {exc}") from exc


def load_seeds(
    ingest_url: str,
    api_key: str,
    folder: Path = SEEDS_DIR,
    *,
    transport: httpx.BaseTransport | None = None,
) -> LoadReport:
    """POST every seed file to ingest's batch endpoint (503s retried).

    Raises `CliError` when ingest refuses a batch, `ServiceDown` when it cannot be reached.
    """
    files = seed_files(folder)
    if not files:
        raise CliError(f"no seed files (*.jsonl) in {folder.resolve()}")
    events = 0
    position: str | None = None
    with IngestClient(ingest_url, api_key, transport=transport) as client:
        client.check_reachable()
        for path in files:
            batch: list[bytes] = []
            for event in read_events(path):
                batch.append(json.dumps(event).encode())
                if len(batch) == BATCH:
                    position = merge_positions(position, _post(client, path, batch))
                    events += len(batch)
                    batch = []
            if batch:
                position = merge_positions(position, _post(client, path, batch))
                events += len(batch)
    return LoadReport(files=len(files), events=events, position=position)


def _post(client: IngestClient, path: Path, batch: list[bytes]) -> str | None:
    result = client.send(batch)
    if isinstance(result, BatchRefused):
        raise CliError(f"{path}: ingest refused the batch: {result.message}")
    return result.position
