"""Operations: `rebuild` the read models, `status` of every part, `dlq replay`."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from chancery.settings import CommonSettings, ProjectorSettings
from services.cli import settings as cli_settings
from services.cli.errors import CliError, reported
from services.cli.options import (
    ApiUrl,
    DeliverUrl,
    IngestUrl,
    JsonOut,
    KafkaServers,
    ProjectorUrl,
    stderr,
    stdout,
)

dlq_app = typer.Typer(
    help="Dead letters: events the projector could not apply.", no_args_is_help=True
)


RedisUrl = Annotated[str | None, typer.Option(help="Redis URL (env CHANCERY_REDIS_URL).")]


@reported
def rebuild(
    keep_old: Annotated[bool, typer.Option(help="Keep the replaced version's keys.")] = False,
    *,
    kafka: KafkaServers = None,
    redis_url: RedisUrl = None,
) -> None:
    """Rebuild every read model from the start of the log into a new version, then switch."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from chancery.observability import configure_logging
    from services.cli.status import reachable
    from services.projector.app import run_rebuild
    from services.projector.progress import Progress as Done

    settings = ProjectorSettings()
    chosen = {"kafka_bootstrap_servers": kafka, "redis_url": redis_url}
    settings = settings.model_copy(update={k: v for k, v in chosen.items() if v})
    asyncio.run(
        reachable(
            settings.kafka_bootstrap_servers,
            settings.redis_url,
            settings.topic,
            redis_cluster=settings.redis_cluster,
        )
    )
    configure_logging("WARNING", json=False, service="rebuild")
    with Progress(
        TextColumn("[bold]rebuild"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} events"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=stderr(),
    ) as bar:
        task = bar.add_task("rebuild", total=None, rate="")

        def show(done: Done) -> None:
            bar.update(task, completed=done.applied, total=max(done.total, 1))
            speed = bar.tasks[task].speed
            bar.update(task, rate=f"{speed:,.0f} events/s" if speed else "")

        try:
            version, old = asyncio.run(run_rebuild(settings, on_progress=show, keep_old=keep_old))
        except (RuntimeError, OSError) as exc:
            raise CliError(f"rebuild failed: {exc}") from None
    typer.echo(f"Now serving read-model version {version} (was {old}).")


@reported
def status(
    *,
    json_out: JsonOut = False,
    ingest_url: IngestUrl = None,
    api_url: ApiUrl = None,
    projector_url: ProjectorUrl = None,
    deliver_url: DeliverUrl = None,
    kafka: KafkaServers = None,
    redis_url: RedisUrl = None,
) -> None:
    """Health of ingest, API, projector, webhook worker, Kafka and Redis; lag per partition.

    Per partition: Kafka's log end, the offset the served read models have applied, and the
    lag between them. Per webhook subscription: its state, the events it has yet to pass,
    and its last error. Exits 1 if any part is down.
    """
    from services.cli import render
    from services.cli.status import gather

    common = CommonSettings()
    report = asyncio.run(
        gather(
            ingest_url=cli_settings.ingest_url(ingest_url),
            api_url=cli_settings.api_url(api_url),
            projector_url=cli_settings.projector_url(projector_url),
            deliver_url=cli_settings.deliver_url(deliver_url),
            kafka_bootstrap=kafka or common.kafka_bootstrap_servers,
            redis_url=redis_url or common.redis_url,
            topic=common.topic,
            dead_letter_topic=common.dead_letter_topic,
            redis_cluster=common.redis_cluster,
        )
    )
    if json_out:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        out = stdout()
        for part in render.status(report):
            out.print(part)
    if report.down:
        names = ", ".join(f"{c.part} ({c.target})" for c in report.down)
        raise CliError(f"{len(report.down)} part(s) down: {names}")


@dlq_app.command("replay")
@reported
def dlq_replay(
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be replayed; change nothing.")
    ] = False,
    from_beginning: Annotated[
        bool,
        typer.Option(
            "--from-beginning", help="Every parked event, not only those not replayed yet."
        ),
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(help="Only events whose parking reason contains this text."),
    ] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Give up after this many seconds.")] = 60,
    kafka: KafkaServers = None,
) -> None:
    """Publish parked events again to the event topic, once their cause is fixed.

    Each goes back to the partition it came from; an event the projector had in fact
    applied is dropped by its identity check, and one still poison is parked again.
    """
    from services.cli import render
    from services.cli.dlq import ParkedEvent, replay_dead_letters
    from services.cli.status import reachable_kafka

    common = CommonSettings()
    if kafka:
        common = common.model_copy(update={"kafka_bootstrap_servers": kafka})
    asyncio.run(reachable_kafka(common.kafka_bootstrap_servers, common.dead_letter_topic))

    def chosen(parked: ParkedEvent) -> bool:
        return reason is None or reason in parked.reason

    try:
        report = asyncio.run(
            replay_dead_letters(
                common,
                select=chosen,
                from_beginning=from_beginning,
                dry_run=dry_run,
                timeout_s=timeout,
            )
        )
    except TimeoutError:
        raise CliError(
            f"dlq replay: Kafka at {common.kafka_bootstrap_servers} did not finish within "
            f"{timeout:g} s; nothing was committed, running it again is safe"
        ) from None
    if report.replayed:
        stdout().print(render.parked_events(report.replayed))
    verb = "would replay" if dry_run else "replayed"
    typer.echo(
        f"{common.dead_letter_topic}: {verb} {len(report.replayed)}, "
        f"skipped {len(report.skipped)} (not selected or from another topic)"
    )
