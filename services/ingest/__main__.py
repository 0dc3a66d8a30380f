"""`python -m services.ingest` (or `chancery ingest`): serve ingest with uvicorn."""

from __future__ import annotations

import uvicorn

from chancery.observability import configure_logging
from chancery.settings import IngestSettings

from .app import create_app


def main() -> None:
    settings = IngestSettings()
    configure_logging(settings.log_level, json=settings.log_json, service="ingest")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
