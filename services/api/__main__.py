"""`python -m services.api` (or `chancery api`): serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from chancery.observability import configure_logging
from chancery.settings import ApiSettings

from .app import create_app


def main() -> None:
    settings = ApiSettings()
    configure_logging(settings.log_level, json=settings.log_json, service="api")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
