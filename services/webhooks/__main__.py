"""`python -m services.webhooks` (or `chancery deliver`): deliver webhook subscriptions."""

from __future__ import annotations

import asyncio

from chancery.observability import configure_logging
from chancery.settings import DeliverSettings

from .app import run


def main() -> None:
    settings = DeliverSettings()
    configure_logging(settings.log_level, json=settings.log_json, service="deliver")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
