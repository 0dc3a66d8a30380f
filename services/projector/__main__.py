"""`python -m services.projector` (or `chancery projector`): run the live projector."""

from __future__ import annotations

import asyncio
import logging

from chancery.observability import configure_logging
from chancery.settings import ProjectorSettings
from services.platform.redis import RedisModeError
from services.platform.topics import TopicMismatchError

from .app import run_live

logger = logging.getLogger("services.projector")


def main() -> None:
    settings = ProjectorSettings()
    configure_logging(settings.log_level, json=settings.log_json, service="projector")
    try:
        asyncio.run(run_live(settings))
    except (TopicMismatchError, RedisModeError) as exc:  # the settings and servers disagree
        logger.error("the projector cannot start: %s", exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
