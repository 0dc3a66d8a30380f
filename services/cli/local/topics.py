"""`python -m services.cli.local.topics`: create the event log and dead-letter topics as the
CHANCERY_* settings ask (docker-compose runs it). The rules are services/platform/topics.py."""

from __future__ import annotations

import logging

from chancery.settings import CommonSettings
from services.platform.topics import ensure_topics_blocking, topics_from_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = CommonSettings()
    ensure_topics_blocking(
        settings.kafka_bootstrap_servers, topics_from_settings(settings), timeout_s=120.0
    )


if __name__ == "__main__":
    main()
