"""`chancery`: run the services, and operate the system.

Operator commands find the services through flags, `CHANCERY_*` variables or the local
defaults (see services/cli/settings.py) and send the key from `.chancery/dev-key` unless
told otherwise. Any failure an operator can act on (a service down, a key refused, a file
of the wrong layout) is printed as one line naming what failed and where, and the command
exits non-zero; set CHANCERY_DEBUG=1 to see a traceback for anything unexpected.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from chancery.auth import Scope
from chancery.settings import AuthSettings, CommonSettings, ProjectorSettings

from . import settings as cli_settings
from .errors import BadInput, CliError

if TYPE_CHECKING:
    from .importers.datasets import DatasetName

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="chancery",
    help="Chancery: diplomatic events in a Kafka log, read models in Redis, an HTTP API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
load_app = typer.Typer(help="Load events through ingest.", no_args_is_help=True)
import_app = typer.Typer(
    help="Import GDELT 2.0 or ICEWS event files through ingest (idempotent).",
    no_args_is_help=True,
)
dlq_app = typer.Typer(
    help="Dead letters: events the projector could not apply.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(load_app, name="load")
app.add_typer(import_app, name="import")
app.add_typer(dlq_app, name="dlq")

DEV_KEY_FILE = cli_settings.DEV_KEY_FILE
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

# --- options shared by the operator commands ---------------------------------------------------

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
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="File holding the API key (env CHANCERY_KEY, the key, or CHANCERY_KEY_FILE; "
        "default .chancery/dev-key).",
        show_default=False,
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the raw JSON instead.")]


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Failures become one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            typer.echo(f"chancery: {exc.message}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:
            if os.environ.get("CHANCERY_DEBUG"):
                raise
            typer.echo(
                f"chancery: unexpected {type(exc).__name__}: {exc} "
                "(CHANCERY_DEBUG=1 shows the traceback)",
                err=True,
            )
            raise typer.Exit(1) from None

    return wrapper


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


# --- the services ---------------------------------------------------------------------------


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
@reported
def up() -> None:
    """Start Kafka, Redis, ingest, projector and API; load the seeds; Ctrl-C stops all."""
    from services.cli.devkeys import atlas_link, ensure_dev_key
    from services.cli.local.supervisor import StackError, StackSettings, run_stack
    from services.cli.seeds import load_seeds

    auth = AuthSettings()
    key = ensure_dev_key(auth.api_keys_file, DEV_KEY_FILE)

    def seed(ingest_url: str) -> None:
        try:
            report = load_seeds(ingest_url, key)
        except CliError as exc:
            raise StackError(f"loading the seeds: {exc.message}") from None
        typer.echo(f"Loaded {report.events} seed events from {report.files} file(s)")
        typer.echo(f"The Atlas (this link signs the browser in): {atlas_link(key)}")

    typer.echo(f"Development API key (every scope), also in {DEV_KEY_FILE}:\n  {key}")
    raise typer.Exit(run_stack(StackSettings(), seed_loader=seed))


@app.command()
@reported
def rebuild(
    keep_old: Annotated[bool, typer.Option(help="Keep the replaced version's keys.")] = False,
) -> None:
    """Rebuild every read model from the start of the log into a new version, then switch."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from chancery.observability import configure_logging
    from services.projector.app import run_rebuild
    from services.projector.projector import Progress as Done

    from .status import reachable

    settings = ProjectorSettings()
    asyncio.run(reachable(settings.kafka_bootstrap_servers, settings.redis_url, settings.topic))
    configure_logging("WARNING", json=False, service="rebuild")
    with Progress(
        TextColumn("[bold]rebuild"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} events"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=_stderr(),
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


@keys_app.command("create")
@reported
def keys_create(
    name: Annotated[str, typer.Argument(help="Who the key is for.")],
    scope: Annotated[list[Scope], typer.Option("--scope", "-s", help="Repeat for several.")],
) -> None:
    """Create an API key; it is shown once, only its digest is stored."""
    from services.cli.devkeys import create_key

    keys_file = AuthSettings().api_keys_file
    try:
        key = create_key(keys_file, name, scope)
    except OSError as exc:
        raise CliError(f"cannot write the keys file {keys_file}: {exc.strerror}") from None
    typer.echo(key)


@load_app.command("seeds")
@reported
def load_seeds_command(
    *,
    ingest_url: IngestUrl = None,
    key_file: KeyFile = None,
    folder: Annotated[Path, typer.Option(help="Folder of *.jsonl seed files.")] = Path("seeds"),
) -> None:
    """Load seeds/*.jsonl through ingest (loading twice changes nothing)."""
    from services.cli.seeds import load_seeds

    url = cli_settings.ingest_url(ingest_url)
    report = load_seeds(url, cli_settings.api_key(key_file), folder)
    typer.echo(f"{report.events} events from {report.files} file(s); position {report.position}")


# --- import ---------------------------------------------------------------------------------

Files = Annotated[
    list[Path],
    typer.Argument(
        help="Files to import (plain, or a .zip holding one file).",
        exists=True,
        dir_okay=False,
        readable=True,
        show_default=False,
    ),
]
BatchSize = Annotated[
    int, typer.Option(min=2, max=1000, help="Events per request to ingest (at most 1000).")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Map and count the rows; send nothing.")]
SkipsFile = Annotated[
    Path | None,
    typer.Option(
        "--skips",
        help="Write each skipped row (file, line, reason, detail) to this TSV file.",
        dir_okay=False,
        show_default=False,
    ),
]
RetryFor = Annotated[
    float,
    typer.Option(
        min=0, help="How long to keep retrying while ingest is unavailable (503), in seconds."
    ),
]


def _importer(dataset: DatasetName, doc: str) -> None:
    """`chancery import DATASET FILE...`: one command per dataset, the same options."""

    def command(
        files: Files,
        *,
        ingest_url: IngestUrl = None,
        key_file: KeyFile = None,
        batch_size: BatchSize = 1000,
        dry_run: DryRun = False,
        skips: SkipsFile = None,
        retry_for: RetryFor = 120.0,
    ) -> None:
        from .importing import run_import

        run_import(
            dataset,
            files,
            ingest_url=ingest_url,
            key_file=key_file,
            batch_size=batch_size,
            dry_run=dry_run,
            skips=skips,
            retry_for=retry_for,
        )

    command.__name__ = f"import_{dataset}"
    command.__doc__ = doc
    import_app.command(dataset)(reported(command))


_importer(
    "gdelt",
    """Import GDELT 2.0 export files (61 columns; GDELT 1.0 files are refused).

    Each row becomes a diplomacy.event.coded (id = GLOBALEVENTID); 040/041/044/046 rows also
    a diplomacy.meeting.held. Rows naming no state or known organisation on either side, the
    same one on both, an unknown CAMEO code or a bad date are skipped and counted.
    """,
)
_importer(
    "icews",
    """Import ICEWS event files (.tab with its header line; NA for missing values).

    Each row becomes a diplomacy.event.coded (id = Event ID); 040/041/044/046 rows also a
    diplomacy.meeting.held, and 042/043 rows whose traveller is a named person a
    diplomacy.visit.leg.started. Skipped rows are counted by reason.
    """,
)


# --- reading --------------------------------------------------------------------------------


def _actor_code(value: str) -> str:
    from chancery.contract import IGOS, is_country, is_igo

    code = value.strip().upper()
    if not (is_country(code) or is_igo(code)):
        raise BadInput(
            f"{value!r} is neither an ISO 3166-1 alpha-3 country code nor a known "
            f"organisation ({', '.join(sorted(IGOS))})"
        )
    return code


AsOfDay = Annotated[
    datetime | None,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="As of this day (YYYY-MM-DD)."),
]
KnownAt = Annotated[
    str | None,
    typer.Option(
        "--known-at", help="As Chancery knew it at this date-time (ISO 8601; UTC if no zone)."
    ),
]


MinPosition = Annotated[
    str | None,
    typer.Option(
        help="Answer once the API reflects this position (printed by import or load seeds)."
    ),
]


def _as_of_params(
    as_of: datetime | None, known_at: str | None, min_position: str | None
) -> dict[str, str]:
    params: dict[str, str] = {"min_position": min_position} if min_position else {}
    if as_of is not None:
        params["as_of"] = as_of.date().isoformat()
    if (known := _known_at(known_at)) is not None:
        params["known_at"] = known
    return params


def _known_at(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"--known-at: {value!r} is not an ISO 8601 date-time (like 2023-05-12T10:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


@app.command()
@reported
def relation(
    a: Annotated[str, typer.Argument(help="A country (ISO alpha-3) or organisation code.")],
    b: Annotated[str, typer.Argument(help="The other one (the order does not matter).")],
    *,
    as_of: AsOfDay = None,
    known_at: KnownAt = None,
    min_position: MinPosition = None,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    key_file: KeyFile = None,
) -> None:
    """Print the state of the relation between two actors: `chancery relation CHN USA`."""
    from .remote import POSITION_WAIT_S, get_json
    from .render import relation as render_relation

    first, second = _actor_code(a), _actor_code(b)
    params = _as_of_params(as_of, known_at, min_position)
    url = cli_settings.api_url(api_url)
    body = get_json(
        "API",
        url,
        f"/v1/relations/{first}/{second}",
        api_key=cli_settings.api_key(key_file),
        params=params,
        wait_s=POSITION_WAIT_S if min_position else 0.0,
    )
    if json_out:
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        _stdout().print(render_relation(body))


@app.command()
@reported
def itinerary(
    person: Annotated[str, typer.Argument(help="The person's id, the slug of the name: li-hui.")],
    *,
    as_of: AsOfDay = None,
    known_at: KnownAt = None,
    min_position: MinPosition = None,
    json_out: JsonOut = False,
    api_url: ApiUrl = None,
    key_file: KeyFile = None,
) -> None:
    """Print a person's trips and their legs: `chancery itinerary li-hui`."""
    from .remote import POSITION_WAIT_S, get_json
    from .render import itinerary as render_itinerary

    if not SLUG.match(person) or len(person) > 64:
        raise BadInput(
            f"{person!r} is not a person id (lowercase words joined by hyphens, like li-hui)"
        )
    url = cli_settings.api_url(api_url)
    body = get_json(
        "API",
        url,
        f"/v1/itineraries/{person}",
        api_key=cli_settings.api_key(key_file),
        params=_as_of_params(as_of, known_at, min_position),
        not_found=f"no itinerary for {person!r}",
        wait_s=POSITION_WAIT_S if min_position else 0.0,
    )
    if json_out:
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        _stdout().print(render_itinerary(body))


def _event_type(value: str) -> str:
    from chancery.contract import EVENT_TYPES

    name = value if value.startswith("diplomacy.") else f"diplomacy.{value}"
    if name not in EVENT_TYPES:
        short = ", ".join(t.removeprefix("diplomacy.") for t in EVENT_TYPES)
        raise BadInput(f"--type: {value!r} is not an event type; known: {short}")
    return name


@app.command()
@reported
def tail(
    *,
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type", "-t", help="Only this type (meeting.held, visit.leg.started...); repeat."
        ),
    ] = None,
    countries: Annotated[
        list[str] | None,
        typer.Option("--country", "-c", help="Only events involving this actor; repeat."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Resume after this position (an SSE id printed earlier)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many events.")] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print each event as one JSON line.")
    ] = False,
    api_url: ApiUrl = None,
    key_file: KeyFile = None,
) -> None:
    """Follow the live stream of applied events; reconnects and resumes where it stopped."""
    from chancery.domain import actors_of

    from .render import event_line, event_of
    from .stream import StreamFollower

    wanted_types = {_event_type(t) for t in types or []}
    wanted_countries = {_actor_code(c) for c in countries or []}
    params = [("type", t) for t in sorted(wanted_types)]
    params += [("country", c) for c in sorted(wanted_countries)]
    err = _stderr()
    out = _stdout()
    url = cli_settings.api_url(api_url)
    follower = StreamFollower(
        url,
        cli_settings.api_key(key_file),
        params=params,
        last_event_id=start,
        on_notice=lambda message: err.print(f"[yellow]{message}[/]"),
    )
    shown = 0
    messages = follower.follow()
    try:
        for message in messages:
            if message.event in {"ping", "keepalive", "heartbeat"}:
                continue
            try:
                payload = json.loads(message.data)
            except ValueError:
                payload = None
            event = event_of(payload)
            # The API filters; filtering here too keeps the promise whatever it supports.
            if event is not None and (
                (wanted_types and event.type not in wanted_types)
                or (wanted_countries and not wanted_countries & actors_of(event))
            ):
                continue
            if json_out:
                typer.echo(json.dumps({"id": message.id, "data": payload}, ensure_ascii=False))
            else:
                out.print(event_line(message.id, message.data))
            shown += 1
            if limit is not None and shown >= limit:
                break
    finally:
        messages.close()  # ends the open request before the client goes
        follower.close()


# --- operations -----------------------------------------------------------------------------


@app.command()
@reported
def status(
    *,
    json_out: JsonOut = False,
    ingest_url: IngestUrl = None,
    api_url: ApiUrl = None,
    projector_url: ProjectorUrl = None,
    kafka: Annotated[
        str | None,
        typer.Option(help="Kafka bootstrap servers (env CHANCERY_KAFKA_BOOTSTRAP_SERVERS)."),
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="Redis URL (env CHANCERY_REDIS_URL).")
    ] = None,
) -> None:
    """Health of ingest, API, projector, Kafka and Redis, and per partition the lag.

    Per partition: Kafka's log end, the offset the served read models have applied, and the
    lag between them. Exits 1 if any part is down.
    """
    from rich.table import Table

    from .status import gather

    common = CommonSettings()
    report = asyncio.run(
        gather(
            ingest_url=cli_settings.ingest_url(ingest_url),
            api_url=cli_settings.api_url(api_url),
            projector_url=cli_settings.projector_url(projector_url),
            kafka_bootstrap=kafka or common.kafka_bootstrap_servers,
            redis_url=redis_url or common.redis_url,
            topic=common.topic,
            dead_letter_topic=common.dead_letter_topic,
        )
    )
    if json_out:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        out = _stdout()
        parts = Table(box=None, padding=(0, 2), show_edge=False)
        parts.add_column("part", no_wrap=True)
        parts.add_column("where", no_wrap=True)
        parts.add_column("state", no_wrap=True)
        parts.add_column("detail", overflow="fold")
        for check in report.checks:
            state = "[green]ok[/]" if check.ok else "[bold red]DOWN[/]"
            parts.add_row(check.part, check.target, state, check.detail)
        out.print(parts)
        if report.partitions:
            table = Table(box=None, padding=(0, 2), show_edge=False, title_justify="left")
            for column in ("partition", "log end", "applied", "lag"):
                table.add_column(column, justify="right")
            for row in report.partitions:
                table.add_row(
                    str(row.partition),
                    _number(row.log_end),
                    _number(row.applied),
                    _number(row.lag),
                )
            table.add_row("total", "", "", _number(report.total_lag), style="bold")
            out.print()
            out.print(f"[bold]{report.topic}[/] (read models v{report.version or '-'})")
            out.print(table)
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
    kafka: Annotated[
        str | None,
        typer.Option(help="Kafka bootstrap servers (env CHANCERY_KAFKA_BOOTSTRAP_SERVERS)."),
    ] = None,
) -> None:
    """Publish parked events again to the event topic, once their cause is fixed.

    Each goes back to the partition it came from; an event the projector had in fact
    applied is dropped by its identity check, and one still poison is parked again.
    """
    from rich.table import Table

    from .dlq import ParkedEvent, replay_dead_letters
    from .status import reachable_kafka

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
    out = _stdout()
    if report.replayed:
        table = Table(box=None, padding=(0, 2), show_edge=False)
        for column in ("parked at", "came from", "reason"):
            table.add_column(column, overflow="fold")
        for parked in report.replayed:
            table.add_row(
                f"{parked.dlq_partition}@{parked.dlq_offset}",
                f"{parked.origin_topic}:{parked.origin_partition}@{parked.origin_offset}",
                parked.reason[:200],
            )
        out.print(table)
    verb = "would replay" if dry_run else "replayed"
    typer.echo(
        f"{common.dead_letter_topic}: {verb} {len(report.replayed)}, "
        f"skipped {len(report.skipped)} (not selected or from another topic)"
    )


def _number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
