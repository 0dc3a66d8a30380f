"""`python -m services.webhooks` (or `chancery deliver`): deliver webhook subscriptions."""

from __future__ import annotations

import asyncio

import uvloop

from chancery.observability import configure_logging
from chancery.settings import DeliverSettings

from .app import run


def main() -> None:
    settings = DeliverSettings()
    configure_logging(settings.log_level, json=settings.log_json, service="deliver")
    # uvloop: the worker's time is mostly the event loop's and its sockets' (a request out,
    # an answer in, a Kafka fetch, per event), which uvloop does in C.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(settings))


if __name__ == "__main__":
    main()
