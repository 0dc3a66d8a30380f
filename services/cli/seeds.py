"""Loading seed events through ingest's HTTP API, the same path as real traffic."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

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
                    raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc


def load_seeds(ingest_url: str, api_key: str, folder: Path = SEEDS_DIR) -> LoadReport:
    """POST every seed file to ingest's batch endpoint; raises on any refusal."""
    files = seed_files(folder)
    events = 0
    position: str | None = None
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    with httpx.Client(base_url=ingest_url, headers=headers, timeout=30) as client:
        for path in files:
            batch: list[dict[str, Any]] = []
            for event in read_events(path):
                batch.append(event)
                if len(batch) == BATCH:
                    position = _post(client, path, batch) or position
                    events += len(batch)
                    batch = []
            if batch:
                position = _post(client, path, batch) or position
                events += len(batch)
    return LoadReport(files=len(files), events=events, position=position)


def _post(client: httpx.Client, path: Path, batch: list[dict[str, Any]]) -> str | None:
    response = client.post("/v1/events/batch", content=json.dumps(batch))
    if response.status_code != 202:
        raise RuntimeError(
            f"{path}: ingest answered {response.status_code}: {response.text[:2000]}"
        )
    body = response.json()
    return str(body["position"])
