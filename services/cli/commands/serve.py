"""Running the services: each one on its own, or the whole local stack with `up`."""

from __future__ import annotations

from typing import Annotated

import typer

from chancery.settings import AuthSettings
from services.cli import settings as cli_settings
from services.cli.errors import CliError, reported


def ingest() -> None:
    """Serve ingest (the front door) on CHANCERY_INGEST_PORT."""
    from services.ingest.__main__ import main

    main()


def projector() -> None:
    """Run the projector: Kafka -> Redis read models."""
    from services.projector.__main__ import main

    main()


def api() -> None:
    """Serve the query and subscription API on CHANCERY_API_PORT."""
    from services.api.__main__ import main

    main()


def deliver() -> None:
    """Deliver webhook subscriptions: the log -> signed CloudEvents to their URLs."""
    from services.webhooks.__main__ import main

    main()


@reported
def up(
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster",
            help="three Kafka nodes (clients on 9092, 9094, 9096) and a Redis Cluster of "
            "three masters and three replicas (7000-7005) instead of one of each",
        ),
    ] = False,
) -> None:
    """Start Kafka, Redis, ingest, projector, API and webhook delivery; load the seeds."""
    from services.cli.devkeys import atlas_link, ensure_dev_key
    from services.cli.local.supervisor import StackError, StackSettings, run_stack
    from services.cli.seeds import load_seeds

    auth = AuthSettings()
    key_file = cli_settings.CliSettings().key_file
    key = ensure_dev_key(auth.api_keys_file, key_file)

    def seed(ingest_url: str) -> None:
        try:
            report = load_seeds(ingest_url, key)
        except CliError as exc:
            raise StackError(f"loading the seeds: {exc.message}") from None
        typer.echo(f"Loaded {report.events} seed events from {report.files} file(s)")
        typer.echo(f"The Atlas (this link signs the browser in): {atlas_link(key)}")

    typer.echo(f"Development API key (every scope), also in {key_file}:\n  {key}")
    raise typer.Exit(run_stack(StackSettings(), seed_loader=seed, cluster=cluster))
