"""`python -m services.projector` (or `chancery projector`): run the live projector."""

from __future__ import annotations

import asyncio

from chancery.observability import configure_logging
from chancery.settings import ProjectorSettings

from .app import run_live


def main() -> None:
    settings = ProjectorSettings()
    configure_logging(settings.log_level, json=settings.log_json, service="projector")
    asyncio.run(run_live(settings))


if __name__ == "__main__":
    main()
