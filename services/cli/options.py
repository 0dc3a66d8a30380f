"""The options several operator commands share, and the consoles they print to.

Where each value falls back to (a `CHANCERY_*` variable, then the local default) is
services/cli/settings.py; the option's help says it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

IngestUrl = Annotated[
    str | None,
    typer.Option(
        "--ingest-url",
        help="Ingest's base URL (env CHANCERY_INGEST_URL; default http://127.0.0.1:8001).",
        show_default=False,
    ),
]
ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        help="The API's base URL (env CHANCERY_API_URL; default http://127.0.0.1:8002).",
        show_default=False,
    ),
]
ProjectorUrl = Annotated[
    str | None,
    typer.Option(
        "--projector-url",
        help="The projector's status URL (env CHANCERY_PROJECTOR_URL; default "
        "http://127.0.0.1:8003).",
        show_default=False,
    ),
]
DeliverUrl = Annotated[
    str | None,
    typer.Option(
        "--deliver-url",
        help="The webhook worker's status URL (env CHANCERY_DELIVER_URL; default "
        "http://127.0.0.1:8004).",
        show_default=False,
    ),
]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="File holding the API key (env CHANCERY_KEY, the key, or CHANCERY_KEY_FILE; "
        "default .chancery/dev-key).",
        show_default=False,
    ),
]
KafkaServers = Annotated[
    str | None,
    typer.Option(help="Kafka bootstrap servers (env CHANCERY_KAFKA_BOOTSTRAP_SERVERS)."),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the raw JSON instead.")]


def stdout() -> Console:
    """Where results go."""
    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    """Where progress and notices go, so that stdout stays the result alone."""
    return Console(stderr=True, highlight=False)
