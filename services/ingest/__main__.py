"""`python -m services.ingest` (or `chancery ingest`): serve ingest with uvicorn.

One process by default. With CHANCERY_INGEST_WORKERS=n, uvicorn runs n worker processes on
the one port, each building the app from the environment (`app_from_environment`). They
share no memory: idempotency claims are atomic in Redis, whichever worker makes them, and
each worker has its own idempotent Kafka producer. Their metrics are summed through a
directory of their own (prometheus_client's multiprocess mode), made here and removed on exit.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import uvicorn

from chancery.observability import configure_logging
from chancery.settings import IngestSettings

from .app import create_app
from .metrics import MULTIPROCESS_DIR


def main() -> None:
    settings = IngestSettings()
    configure_logging(settings.log_level, json=settings.log_json, service="ingest")
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        # Named, not "auto": a missing uvloop or httptools fails at start instead of
        # silently serving on asyncio's loop and h11, which are much slower.
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    with tempfile.TemporaryDirectory(prefix="chancery-ingest-metrics-") as metrics_dir:
        os.environ.setdefault(MULTIPROCESS_DIR, metrics_dir)  # before any worker starts
        uvicorn.run(
            "services.ingest.app:app_from_environment",
            factory=True,
            workers=settings.workers,
            **options,
        )


if __name__ == "__main__":
    main()
