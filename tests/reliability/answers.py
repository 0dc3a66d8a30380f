"""The read models as the API answers them: a fixed set of questions about a log, asked of a
running API, with every page followed, in a form two runs can be compared in.

`questions(events)` asks about every pair and actor the events name (relation now and as of
a day, both timelines, a country's relations and visits), every person (itinerary and
record) and a sample of events by id. `answers(api, qs)` asks them; `comparable` drops what
may differ between two logs of the same events (where events sit: positions, offsets,
cursors that embed them) and keeps everything else, so two answers compare equal exactly
when they say the same about the world.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from chancery.contract import EnvoyAppointed, Event, TripPayload
from chancery.domain import actors_of, pairs_of

LOCATION_FIELDS = frozenset({"position", "log_position", "next_cursor", "partition", "offset"})
MAX_PAGES = 200
PAGE = 500


@dataclass(frozen=True)
class Question:
    path: str
    params: tuple[tuple[str, str], ...] = ()
    paged: bool = False

    @property
    def name(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params)
        return f"{self.path}?{query}" if query else self.path


def questions(events: Iterable[Event], *, sample_ids: int = 60, seed: int = 0) -> list[Question]:
    events = list(events)
    pairs = sorted({p.key for e in events for p in pairs_of(e)})
    actors = sorted({a for e in events for a in actors_of(e)})
    people = sorted(
        {e.data.traveller.id for e in events if isinstance(e.data, TripPayload)}
        | {e.data.person.id for e in events if isinstance(e, EnvoyAppointed)}
    )
    out: list[Question] = []
    for pair in pairs:
        a, b = pair.split("|")
        out += [
            Question(f"/v1/relations/{a}/{b}"),
            Question(f"/v1/relations/{a}/{b}", (("as_of", "2023-03-31"),)),
            Question(f"/v1/relations/{a}/{b}/timeline", (("limit", str(PAGE)),), paged=True),
        ]
    for actor in actors:
        out += [
            Question("/v1/relations", (("country", actor), ("limit", str(PAGE))), paged=True),
            Question(f"/v1/countries/{actor}/timeline", (("limit", str(PAGE)),), paged=True),
            Question("/v1/visits", (("country", actor), ("limit", str(PAGE))), paged=True),
        ]
    for person in people:
        out += [Question(f"/v1/itineraries/{person}"), Question(f"/v1/people/{person}")]
    ids = sorted({(e.id, e.source) for e in events})
    for event_id, source in random.Random(seed).sample(ids, min(sample_ids, len(ids))):
        out.append(Question(f"/v1/events/{quote(event_id, safe='')}", (("source", source),)))
    return out


def comparable(value: Any, leave_out: frozenset[str] = LOCATION_FIELDS) -> Any:
    """`value` without where things sit in the log (positions, offsets, cursors), or
    without the members named in `leave_out`."""
    if isinstance(value, dict):
        return {k: comparable(v, leave_out) for k, v in value.items() if k not in leave_out}
    if isinstance(value, list):
        return [comparable(v, leave_out) for v in value]
    return value


def without(found: dict[str, Answer], members: frozenset[str]) -> dict[str, Answer]:
    """The answers without `members` anywhere in their bodies (what differs between two
    logs of the same events besides their places: `recordedtime`, stamped by ingest)."""
    return {name: Answer(a.status, comparable(a.body, members)) for name, a in found.items()}


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # comparable(JSON), every page's items joined


async def ask(api: httpx.AsyncClient, question: Question) -> Answer:
    """One question, every page; the first status that is not 200 ends it."""
    params = dict(question.params)
    pages: list[Any] = []
    for _ in range(MAX_PAGES):
        response = await api.get(question.path, params=params)
        if response.status_code != 200:
            return Answer(response.status_code, response.json() if response.content else None)
        body = response.json()
        pages.append(comparable(body))
        cursor = body.get("next_cursor") if question.paged else None
        if not cursor:
            break
        params["cursor"] = cursor
    else:
        raise AssertionError(f"{question.name}: more than {MAX_PAGES} pages")
    if len(pages) == 1:
        return Answer(200, pages[0])
    joined = dict(pages[0])
    joined["items"] = [item for page in pages for item in page["items"]]
    return Answer(200, joined)


async def answers(api: httpx.AsyncClient, qs: Sequence[Question]) -> dict[str, Answer]:
    return {q.name: await ask(api, q) for q in qs}


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two JSON values first differ, and how (None: equal)."""
    if type(a) is not type(b):
        return f"{path}: {str(a)[:150]} != {str(b)[:150]}"
    if isinstance(a, dict):
        for key in sorted(a.keys() | b.keys()):
            if key not in a or key not in b:
                return f"{path}.{key}: only in {'second' if key not in a else 'first'}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return f"{path}: {len(a)} items != {len(b)}" if len(a) != len(b) else None
    return None if a == b else f"{path}: {str(a)[:150]} != {str(b)[:150]}"


def differences(a: dict[str, Answer], b: dict[str, Answer], *, limit: int = 8) -> list[str]:
    out = [
        f"{name}: status {a[name].status}/{b[name].status if name in b else None} "
        f"{first_difference(a[name].body, b[name].body if name in b else None)}"
        for name in a
        if a[name] != b.get(name)
    ]
    out += [f"{name}: only in the second" for name in b if name not in a]
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])
