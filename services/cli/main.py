"""`chancery`: run the services, and operate the system."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from chancery.auth import Scope
from chancery.observability import configure_logging
from chancery.settings import AuthSettings, ProjectorSettings

app = typer.Typer(
    name="chancery",
    help="Chancery: diplomatic events in a Kafka log, read models in Redis, an HTTP API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
load_app = typer.Typer(help="Load events through ingest.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(load_app, name="load")

DEV_KEY_FILE = Path(".chancery/dev-key")


@app.command()
def ingest() -> None:
    """Serve ingest (the front door) on CHANCERY_INGEST_PORT."""
    from services.ingest.__main__ import main

    main()


@app.command()
def projector() -> None:
    """Run the projector: Kafka -> Redis read models."""
    from services.projector.__main__ import main

    main()


@app.command()
def api() -> None:
    """Serve the query and subscription API on CHANCERY_API_PORT."""
    from services.api.__main__ import main

    main()


@app.command()
def up() -> None:
    """Start Kafka, Redis, ingest, projector and API; load the seeds; Ctrl-C stops all."""
    from services.cli.devkeys import ensure_dev_key
    from services.cli.local.supervisor import StackSettings, run_stack
    from services.cli.seeds import load_seeds

    auth = AuthSettings()
    key = ensure_dev_key(auth.api_keys_file, DEV_KEY_FILE)

    def seed(ingest_url: str) -> None:
        report = load_seeds(ingest_url, key)
        typer.echo(f"Loaded {report.events} seed events from {report.files} file(s)")

    typer.echo(f"Development API key (every scope), also in {DEV_KEY_FILE}:\n  {key}")
    raise typer.Exit(run_stack(StackSettings(), seed_loader=seed))


@app.command()
def rebuild(
    keep_old: Annotated[bool, typer.Option(help="Keep the replaced version's keys.")] = False,
) -> None:
    """Rebuild every read model from the start of the log into a new version, then switch."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from services.projector.app import run_rebuild
    from services.projector.projector import Progress as Done

    settings = ProjectorSettings()
    configure_logging("WARNING", json=False, service="rebuild")
    with Progress(
        TextColumn("[bold]rebuild"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} events"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("rebuild", total=None, rate="")

        def show(done: Done) -> None:
            bar.update(task, completed=done.applied, total=max(done.total, 1))
            speed = bar.tasks[task].speed
            bar.update(task, rate=f"{speed:,.0f} events/s" if speed else "")

        version, old = asyncio.run(run_rebuild(settings, on_progress=show, keep_old=keep_old))
    typer.echo(f"Now serving read-model version {version} (was {old}).")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who the key is for.")],
    scope: Annotated[list[Scope], typer.Option("--scope", "-s", help="Repeat for several.")],
) -> None:
    """Create an API key; it is shown once, only its digest is stored."""
    from services.cli.devkeys import create_key

    key = create_key(AuthSettings().api_keys_file, name, scope)
    typer.echo(key)


@load_app.command("seeds")
def load_seeds_command(
    ingest_url: Annotated[str, typer.Option(help="Ingest's base URL.")] = "",
    key_file: Annotated[
        Path, typer.Option(help="File holding an events:write key.")
    ] = DEV_KEY_FILE,
) -> None:
    """Load seeds/*.jsonl through ingest (loading twice changes nothing)."""
    from chancery.settings import IngestSettings
    from services.cli.seeds import load_seeds

    url = ingest_url or f"http://127.0.0.1:{IngestSettings().port}"
    report = load_seeds(url, key_file.read_text().strip())
    typer.echo(f"{report.events} events from {report.files} file(s); position {report.position}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
