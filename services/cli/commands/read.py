"""Reading: a relation and an itinerary from the read models, and the live stream (`tail`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli import settings as cli_settings
from services.cli.errors import BadInput, reported
from services.cli.options import ApiUrl, JsonOut, KeyFile, stderr, stdout

if TYPE_CHECKING:
    from rich.console import RenderableType

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
    body = _ask_api(
        f"/v1/relations/{first}/{second}",
        params=_as_of_params(as_of, known_at, min_position),
        api_url=api_url,
        key_file=key_file,
    )
    _print_answer(body, render.relation, json_out=json_out)


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
    body = _ask_api(
        f"/v1/itineraries/{person}",
        params=_as_of_params(as_of, known_at, min_position),
        api_url=api_url,
        key_file=key_file,
        not_found=f"no itinerary for {person!r}",
    )
    _print_answer(body, render.itinerary, json_out=json_out)


def _ask_api(
    path: str,
    *,
    params: dict[str, str],
    api_url: str | None,
    key_file: Path | None,
    not_found: str | None = None,
) -> dict[str, Any]:
    """The API's answer; with `min_position`, a 504 is asked again for a while."""
    from services.cli.remote import POSITION_WAIT_S, get_json

    return get_json(
        "API",
        cli_settings.api_url(api_url),
        path,
        api_key=cli_settings.api_key(key_file),
        params=params,
        not_found=not_found,
        wait_s=POSITION_WAIT_S if "min_position" in params else 0.0,
    )


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
    from chancery.domain import actors_of
    from services.cli.render import event_line, event_of
    from services.cli.stream import StreamFollower

    wanted_types = {_event_type(t) for t in types or []}
    wanted_countries = {_actor_code(c) for c in countries or []}
    params = [("type", t) for t in sorted(wanted_types)]
    params += [("country", c) for c in sorted(wanted_countries)]
    err = stderr()
    out = stdout()
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
