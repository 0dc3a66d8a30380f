"""How the operator commands print: relations, itineraries, stream events, import summaries.

Renderers take the services' JSON (dicts) and are lenient about what they do not know: a
missing field prints as a dash, never as an error, so the command line keeps working while
the API grows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from chancery.contract import (
    EVENT_TYPES,
    Event,
    EventCodedData,
    MeetingHeldData,
    TripPayload,
    VisitAnnouncedData,
    VisitLegData,
    actor_name,
    cameo,
    partition_key,
)

from .importers.events import SKIP_REASONS
from .importers.run import ImportReport

if TYPE_CHECKING:
    from .dlq import ParkedEvent
    from .status import StatusReport

DASH = "—"
QUADS = {
    "1": "verbal cooperation",
    "2": "material cooperation",
    "3": "verbal conflict",
    "4": "material conflict",
}


def _text(value: object) -> str:
    if value is None or value == "":
        return DASH
    return str(value)


def _named(code: object) -> str:
    if not isinstance(code, str):
        return _text(code)
    try:
        return f"{actor_name(code)} ({code})"
    except KeyError:
        return code


def _pair_codes(pair: object) -> tuple[str, str] | None:
    if isinstance(pair, Mapping) and "first" in pair and "second" in pair:
        return str(pair["first"]), str(pair["second"])
    if isinstance(pair, str) and "|" in pair:
        a, _, b = pair.partition("|")
        return a, b
    if isinstance(pair, list | tuple) and len(pair) == 2:
        return str(pair[0]), str(pair[1])
    return None


def _ref(value: object) -> str:
    if isinstance(value, Mapping):
        return f"{value.get('source', '?')}#{value.get('id', '?')}"
    return _text(value)


def _contact(value: object) -> str:
    if not isinstance(value, Mapping):
        return _text(value)
    kind = value.get("kind", "contact")
    return f"{kind} {_text(value.get('when'))}  [{_ref(value.get('event'))}]"


def relation(body: Mapping[str, Any]) -> RenderableType:
    codes = _pair_codes(body.get("pair"))
    title = f"{_named(codes[0])} ↔ {_named(codes[1])}" if codes else _text(body.get("pair"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    status = _text(body.get("status"))
    if body.get("status_since"):
        status += f" since {body['status_since']}"
    if body.get("mediator"):
        status += f" (mediated by {_named(body['mediator'])})"
    grid.add_row("status", status)
    partnership = body.get("partnership")
    if isinstance(partnership, Mapping):
        grid.add_row(
            "partnership", f"“{partnership.get('label')}” since {_text(partnership.get('since'))}"
        )
    else:
        grid.add_row("partnership", _text(partnership))
    score = body.get("score")
    climate = body.get("climate")
    shown = f"{score:+.2f}" if isinstance(score, int | float) else _text(score)
    grid.add_row("score", f"{shown} ({climate})" if climate else shown)
    quads = body.get("quad_counts")
    counts = ""
    if isinstance(quads, Mapping):
        counts = "  (" + ", ".join(f"{QUADS[k]} {quads.get(k, 0)}" for k in QUADS) + ")"
    grid.add_row("events", f"{_text(body.get('event_count'))}{counts}")
    grid.add_row("last contact", _contact(body.get("last_contact")))
    grid.add_row("next contact", _contact(body.get("next_contact")))
    as_of = body.get("as_of")
    header = Text(title, style="bold")
    if as_of:
        header.append(f"   as of {as_of}", style="dim")
    if body.get("known_at"):
        header.append(f", as known at {body['known_at']}", style="dim")
    parts: list[RenderableType] = [header, grid]
    if body.get("position"):
        parts.append(Text(f"position {body['position']}", style="dim"))
    return Group(*parts)


def itinerary(body: Mapping[str, Any]) -> RenderableType:
    person = body.get("person")
    if isinstance(person, Mapping):
        who = f"{person.get('name', DASH)} ({person.get('id', body.get('person_id'))})"
        extra = [_named(person.get("country"))]
        if person.get("role"):
            extra.append(str(person["role"]))
        header = Text(who, style="bold")
        header.append("   " + " · ".join(extra), style="dim")
    else:
        header = Text(_text(body.get("person_id")), style="bold")
    parts: list[RenderableType] = [header]
    trips = body.get("trips")
    if not isinstance(trips, list) or not trips:
        parts.append(Text("no trips", style="dim"))
    for trip in trips if isinstance(trips, list) else []:
        if not isinstance(trip, Mapping):
            continue
        line = Text(f"\ntrip {trip.get('trip_id', DASH)}: ", style="bold")
        line.append(_text(trip.get("status")), style="bold cyan")
        if trip.get("planned"):
            line.append(f"   planned {trip['planned']}")
        parts.append(line)
        if trip.get("purpose"):
            parts.append(Text(f"  {trip['purpose']}", style="italic"))
        legs = Table(box=None, padding=(0, 2), show_edge=False)
        for column in ("country", "city", "status", "planned", "started", "completed"):
            legs.add_column(column, style="dim" if column == "city" else None)
        for leg in trip.get("legs") or []:
            if isinstance(leg, Mapping):
                legs.add_row(
                    _named(leg.get("country")),
                    _text(leg.get("city")),
                    _text(leg.get("status")),
                    _text(leg.get("planned")),
                    _text(leg.get("started")),
                    _text(leg.get("completed")),
                )
        parts.append(legs)
    if body.get("position"):
        parts.append(Text(f"\nposition {body['position']}", style="dim"))
    return Group(*parts)


# --- stream events ---------------------------------------------------------------------------


def event_of(payload: Any) -> Event | None:
    """The typed event in an SSE message's data (the event itself, or under "event")."""
    if isinstance(payload, Mapping) and isinstance(payload.get("event"), Mapping):
        payload = payload["event"]
    if not isinstance(payload, Mapping):
        return None
    cls = EVENT_TYPES.get(str(payload.get("type")))
    if cls is None:
        return None
    try:
        return cls.model_validate(payload)
    except ValidationError:
        return None


def _summary(event: Event) -> str:
    data = event.data
    if isinstance(data, EventCodedData):
        name = cameo.lookup(data.cameo).name if cameo.is_known(data.cameo) else "?"
        return f"{data.actor1} → {data.actor2}  {data.cameo} {name}"
    if isinstance(data, MeetingHeldData):
        people = ", ".join(p.name for p in data.participants)
        where = ", ".join(x for x in (data.city, data.country) if x)
        text = f"{' · '.join(data.parties)} {data.mode.replace('_', ' ')}"
        return text + (f" ({people})" if people else "") + (f" in {where}" if where else "")
    if isinstance(data, VisitLegData):
        city = f" ({data.city})" if data.city else ""
        return f"{data.traveller.name} in {data.country}{city}  trip {data.trip_id}"
    if isinstance(data, VisitAnnouncedData):
        legs = ", ".join(leg.country for leg in data.legs)
        return f"{data.traveller.name} to {legs}  trip {data.trip_id}"
    if isinstance(data, TripPayload):
        return f"{data.traveller.name}  trip {data.trip_id}"
    key = partition_key(event)
    return key.replace("|", " · ") if key else ""


def event_line(message_id: str | None, data: str) -> Text:
    """One line per stream message: occurred, type, what happened, and its position."""
    try:
        payload = json.loads(data)
    except ValueError:
        return Text(data)
    event = event_of(payload)
    if event is None:
        return Text(json.dumps(payload, separators=(",", ":"))[:300])
    when = event.data.when
    line = Text(f"{when if when is not None else DASH!s:<12} ", style="cyan")
    line.append(f"{event.type.removeprefix('diplomacy.'):<22} ", style="bold")
    line.append(_summary(event))
    if message_id:
        line.append(f"   @{message_id}", style="dim")
    return line


# --- import summary --------------------------------------------------------------------------


def import_summary(report: ImportReport) -> str:
    """Plain text (it is also what scripts and tests read): `  <label>  <count>` lines."""
    dry = report.dry_run

    def count(label: str, value: int, note: str = "") -> str:
        return f"  {label:<17}{value:>9,}" + (f"   {note}" if note else "")

    reasons = max(len(label) for label in SKIP_REASONS.values()) + 2
    lines = [
        f"{report.dataset}: {report.files} file(s)" + (" (dry run: nothing sent)" if dry else ""),
        count("rows read", report.rows_read),
        count("rows to import" if dry else "rows imported", report.rows_imported),
        count("rows skipped", report.rows_skipped),
    ]
    for reason, label in SKIP_REASONS.items():
        if report.skipped[reason]:
            lines.append(f"    {label:<{reasons}}{report.skipped[reason]:>9,}")
    if report.rows_refused:
        lines.append(count("rows refused", report.rows_refused, "(see REFUSED below)"))
    by_type = ", ".join(
        f"{n:,} {kind.removeprefix('diplomacy.')}"
        for kind, n in sorted(report.events_accepted.items())
    )
    total = sum(report.events_accepted.values())
    lines.append(
        count(
            "events to send" if dry else "events accepted", total, f"({by_type})" if by_type else ""
        )
    )
    if report.events_new is not None and not dry:
        lines.append(count("events new", report.events_new, "(the others were in the log)"))
    if report.position:
        lines.append(f"  {'position':<17}{report.position}")
    lines.extend(f"  REFUSED {refusal}" for refusal in report.refusals)
    return "\n".join(lines)


def status(report: StatusReport) -> list[RenderableType]:
    """`chancery status`: each part's state, then per partition the log end, applied, lag.

    Each part takes two lines, its name, state and address, then what it said beneath the
    address, so the text has the width of the terminal less two short columns and wraps
    between words: readable in 80 columns.
    """
    parts = Table.grid(padding=(0, 2))
    parts.add_column(no_wrap=True)
    parts.add_column(no_wrap=True)
    parts.add_column(overflow="fold")
    for check in report.checks:
        state = "[green]ok[/]" if check.ok else "[bold red]DOWN[/]"
        parts.add_row(check.part, state, Text(check.target))
        parts.add_row("", "", Text(check.detail, style="dim" if check.ok else ""))
    if not report.partitions:
        return [parts]
    table = Table(box=None, padding=(0, 2), show_edge=False, title_justify="left")
    for column in ("partition", "log end", "applied", "lag"):
        table.add_column(column, justify="right")
    for row in report.partitions:
        table.add_row(
            str(row.partition), _number(row.log_end), _number(row.applied), _number(row.lag)
        )
    table.add_row("total", "", "", _number(report.total_lag), style="bold")
    title = f"[bold]{report.topic}[/] (read models v{report.version or '-'})"
    shown: list[RenderableType] = [parts, "", title, table]
    if report.subscriptions:
        shown += ["", "[bold]webhook subscriptions[/]", _subscriptions(report)]
    return shown


def _subscriptions(report: StatusReport) -> Table:
    """One short row each (80 columns): id, state, events behind, last error (cut)."""
    table = Table(box=None, padding=(0, 1), show_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("behind", justify="right", no_wrap=True)
    table.add_column("last error", no_wrap=True, overflow="ellipsis", max_width=36)
    for row in report.subscriptions:
        state = "[yellow]paused[/]" if row.state == "paused" else row.state
        table.add_row(row.id, state, _number(row.lag), row.last_error or DASH)
    return table


def parked_events(parked: list[ParkedEvent]) -> Table:
    """`chancery dlq replay`: where each event is parked, where it came from, and why."""
    table = Table(box=None, padding=(0, 2), show_edge=False)
    for column in ("parked at", "came from", "reason"):
        table.add_column(column, overflow="fold")
    for event in parked:
        table.add_row(
            f"{event.dlq_partition}@{event.dlq_offset}",
            f"{event.origin_topic}:{event.origin_partition}@{event.origin_offset}",
            event.reason[:200],
        )
    return table


def _number(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"
