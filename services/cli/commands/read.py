"""Reading: a relation and an itinerary from the read models, and the live stream (`tail`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from services.cli import settings as cli_settings
from services.cli.errors import BadInput, refusal, reported
from services.cli.options import ApiUrl, JsonOut, KeyFile, stderr, stdout

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import RenderableType

    from chancery.client import Client

T = TypeVar("T")

READ_TIMEOUT_S = 15.0
POSITION_WAIT_S = 60.0
"""How long `--min-position` keeps asking while the API answers it is not applied yet."""

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


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


def _moment(as_of: datetime | None, known_at: str | None) -> tuple[date | None, datetime | None]:
    return (as_of.date() if as_of is not None else None), _known_at(known_at)


def _known_at(value: str | None) -> datetime | None:
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
    return moment


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
    from services.cli import render

    first, second = _actor_code(a), _actor_code(b)
    day, moment = _moment(as_of, known_at)
    with _api_client(api_url, key_file) as client:
        body = _asked(
            lambda: client.relation(
                first, second, as_of=day, known_at=moment, min_position=min_position
            )
        )
    _print_answer(_as_sent(body), render.relation, json_out=json_out)


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
    from services.cli import render

    if not SLUG.match(person) or len(person) > 64:
        raise BadInput(
            f"{person!r} is not a person id (lowercase words joined by hyphens, like li-hui)"
        )
    day, moment = _moment(as_of, known_at)
    with _api_client(api_url, key_file) as client:
        body = _asked(
            lambda: client.itinerary(person, as_of=day, known_at=moment, min_position=min_position),
            not_found=f"no itinerary for {person!r}",
        )
    _print_answer(_as_sent(body), render.itinerary, json_out=json_out)


def _api_client(api_url: str | None, key_file: Path | None) -> Client:
    """The API's client as the read commands use it: a failure is reported at once (an
    operator runs the command again), but a `min_position` not yet applied (504) is asked
    again for a while."""
    from chancery.client import Client

    return Client(
        api_url=cli_settings.api_url(api_url),
        api_key=cli_settings.api_key(key_file),
        timeout_s=READ_TIMEOUT_S,
        retry_for_s=0,
        position_wait_s=POSITION_WAIT_S,
    )


def _asked(ask: Callable[[], T], *, not_found: str | None = None) -> T:
    from chancery.client import ChanceryError

    try:
        return ask()
    except ChanceryError as exc:
        raise refusal(exc, not_found=not_found) from None


def _as_sent(body: BaseModel) -> dict[str, Any]:
    """An answer as the API sent it: its position first, then the body's fields in order."""
    fields = body.model_dump(mode="json", exclude={"position"})
    return {"position": getattr(body, "position", ""), **fields}


def _print_answer(
    body: dict[str, Any],
    render: Callable[[dict[str, Any]], RenderableType],
    *,
    json_out: bool,
) -> None:
    if json_out:
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        stdout().print(render(body))


def _event_type(value: str) -> str:
    from chancery.contract import EVENT_TYPES

    name = value if value.startswith("diplomacy.") else f"diplomacy.{value}"
    if name not in EVENT_TYPES:
        short = ", ".join(t.removeprefix("diplomacy.") for t in EVENT_TYPES)
        raise BadInput(f"--type: {value!r} is not an event type; known: {short}")
    return name


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
    from chancery.client import ChanceryError, Client
    from chancery.domain import actors_of
    from services.cli.render import event_line, event_of

    wanted_types = {_event_type(t) for t in types or []}
    wanted_countries = {_actor_code(c) for c in countries or []}
    err = stderr()
    out = stdout()
    client = Client(
        api_url=cli_settings.api_url(api_url),
        api_key=cli_settings.api_key(key_file),
        retry_for_s=0,  # the first connection failing is the operator's to fix; later ones pass
        on_retry=lambda notice: err.print(f"[yellow]{notice}[/]"),
    )
    shown = 0
    with (
        client,
        client.stream(
            types=sorted(wanted_types), countries=sorted(wanted_countries), after=start
        ) as messages,
    ):
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
        except ChanceryError as exc:
            raise refusal(exc) from None
