"""Every Redis key Chancery uses, and the codec of every value stored under one.

No other module builds a key. Builders take validated values only: country codes and
person slugs validated by the contract, and event identities as `event_key` digests, so
no caller input can reach Redis as a pattern, a hash tag or a separator. `_checked`
enforces that at the door.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple, cast

import zstandard
from pydantic import BaseModel, ConfigDict, TypeAdapter

from chancery.contract import When
from chancery.contract.when import PRECISION_RANK
from chancery.domain.itineraries import Trip
from chancery.domain.relations import (
    ContactEntry,
    DayBucket,
    PartnershipEntry,
    PlanEntry,
    StatusEntry,
)
from chancery.subscriptions import (
    DeliveryAttempt,
    Subscription,
    SubscriptionState,
    SubscriptionStatus,
)

ROOT = "chancery"

# Key parts are short, printable and free of Redis glob and hash-tag characters. 160: a trip
# key is a person id and a trip id (slugs of up to 64 each) joined by a dot.
_SAFE_PART = re.compile(r"^[A-Za-z0-9_.|-]{1,160}$")


class UnsafeKeyPartError(ValueError):
    """A value that must not become part of a Redis key."""


def _checked(part: str) -> str:
    if not _SAFE_PART.fullmatch(part):
        raise UnsafeKeyPartError(f"refusing {part[:40]!r} as part of a Redis key")
    return part


# --- ingest: idempotency records ----------------------------------------------------------


def idempotency(event_key: str) -> str:
    """Ingest's record of what became of (source, id): `event_key` is the contract's digest."""
    return f"{ROOT}:ingest:v1:idem:{_checked(event_key)}"


class IdempotencyRecord(NamedTuple):
    """What ingest remembers of an event it was given: pending while being published.

    A named tuple, not a pydantic model or a frozen dataclass: ingest makes two per event it
    accepts, and these are the hot path (a tuple is built in C; a frozen dataclass sets each
    field through `object.__setattr__`).

    Stored as one short line, `P<digest> <claim> <partition_key>` while pending and
    `D<digest> <partition>:<offset> <partition_key>` once done: the partition key is the
    rest of the line, so it may hold any character. A line, not JSON: ingest sends each
    record to Redis twice per event (the claim, then the claim again beside the done
    record), so every byte of it counts twice. Records stored as JSON by earlier releases
    (one idempotency window of them, after an upgrade) still read: see `decode`.
    """

    digest: str
    partition_key: str
    state: str  # "pending" | "done"
    claim: str | None = None  # nonce of the request holding a pending claim
    partition: int | None = None
    offset: int | None = None

    @classmethod
    def pending(cls, digest: str, partition_key: str, claim: str) -> IdempotencyRecord:
        """The claim a request holds on an event while it publishes it."""
        return cls(digest, partition_key, "pending", claim)

    def done(self, partition: int, offset: int) -> IdempotencyRecord:
        """This event's record once the log holds it at (partition, offset)."""
        return IdempotencyRecord(self.digest, self.partition_key, "done", None, partition, offset)

    def encode(self) -> bytes:
        # The digest and the claim are single words (the line splits on spaces), and the
        # partition key is not empty: `decode` reads back exactly what this writes.
        digest, claim, partition, offset = self.digest, self.claim, self.partition, self.offset
        if digest and " " not in digest and self.partition_key:
            if self.state == "pending" and claim and " " not in claim:
                return f"P{digest} {claim} {self.partition_key}".encode()
            if self.state == "done" and _position(partition) and _position(offset):
                return f"D{digest} {partition}:{offset} {self.partition_key}".encode()
        raise ValueError(f"not a storable idempotency record: {self!r}")

    @classmethod
    def decode(cls, raw: bytes | str) -> IdempotencyRecord:
        """A stored record. Raises `ValueError` for anything `encode` would not write, or
        (the format before this one) what `_StoredIdempotencyRecord` does not accept."""
        text = raw.decode() if isinstance(raw, bytes) else raw
        if text.startswith("{"):
            stored = _StoredIdempotencyRecord.model_validate_json(text)
            return cls(*stored.model_dump().values())
        parts = text[1:].split(" ", 2)
        if len(parts) == 3 and all(parts):
            digest, middle, partition_key = parts
            if text[0] == "P":
                return cls(digest, partition_key, "pending", middle)
            position = _STORED_POSITION.fullmatch(middle)
            if text[0] == "D" and position is not None:
                partition, offset = position.groups()
                return cls(digest, partition_key, "done", None, int(partition), int(offset))
        raise ValueError(f"not a stored idempotency record: {text[:80]!r}")


_STORED_POSITION = re.compile(r"([0-9]+):([0-9]+)")


def _position(value: int | None) -> bool:
    """A partition or an offset: an int (not a bool) of zero or more."""
    return type(value) is int and value >= 0


class _StoredIdempotencyRecord(BaseModel):
    """A record as ingest stored it before `IdempotencyRecord.encode` wrote lines: the JSON of
    this model (`model_dump_json(exclude_none=True)`). Read, never written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    digest: str
    partition_key: str
    state: str
    claim: str | None = None
    partition: int | None = None
    offset: int | None = None


# --- read models: the pointer, versions, and each partition's share ---------------------------

ACTIVE_VERSION = f"{ROOT}:rm:active"
"""The version the API serves. Flipped in one SET when a rebuild completes."""

VERSION_COUNTER = f"{ROOT}:rm:versions"
"""INCR gives the next version number for a rebuild."""


def version_meta(version: int) -> str:
    """Hash of `MetaField`s: layout, partitions, topic, state (a `VersionState`), created_ms,
    ready_ms."""
    return f"{ROOT}:rm:v{version}:meta"


LAYOUT = "2"
"""The read-model layout this module defines: which keys a version holds and how each value
is encoded. A version records the layout it was built in (`MetaField.LAYOUT`; versions built
before layouts were numbered have none: layout 1). The API serves only versions of this
layout, and the projector builds a new version rather than read another layout's keys: a
layout change is a `chancery rebuild`, never a migration."""


def layout_of(meta: Mapping[bytes, bytes] | Mapping[bytes | str, bytes | str]) -> str:
    """The layout a version's meta hash records ("1" when it records none)."""
    value = meta.get(MetaField.LAYOUT.encode())
    return value.decode() if isinstance(value, bytes) else value or "1"


class MetaField:
    """The fields of a version's `version_meta` hash."""

    LAYOUT = "layout"
    STATE = "state"
    PARTITIONS = "partitions"
    TOPIC = "topic"
    CREATED_MS = "created_ms"
    READY_MS = "ready_ms"


class VersionState:
    """The values of `MetaField.STATE`: a version is built, then served once ready."""

    BUILDING = "building"
    READY = "ready"


class ProgressField:
    """The fields of a partition's `PartitionSpace.progress` hash. `APPLIED` is written with
    the offset key, in the same atomic step."""

    APPLIED = "applied"
    HIGH_WATERMARK = "high_watermark"
    CAUGHT_UP = "caught_up"
    UPDATED_MS = "updated_ms"


def version_prefix(version: int) -> str:
    """Everything of one version starts with this (used to drop an old version)."""
    return f"{ROOT}:rm:v{version}:"


class PartitionSpace:
    """The keys of one Kafka partition's share of the read models, in one version.

    All share the hash tag `{pN}`, so one Lua script may touch all of them on Redis Cluster.
    An event is stored once, under the offset where its identity was first applied (its
    *place*); every other structure names it by that place or by its identity.
    """

    __slots__ = ("_p", "partition", "version")

    def __init__(self, version: int, partition: int) -> None:
        if version < 1 or partition < 0:
            raise UnsafeKeyPartError("versions start at 1 and partitions at 0")
        self.version = version
        self.partition = partition
        self._p = f"{ROOT}:rm:v{version}:{{p{partition}}}:"

    # bookkeeping
    @property
    def offset(self) -> str:
        """The last applied offset: moved only together with the writes it covers."""
        return self._p + "offset"

    @property
    def progress(self) -> str:
        """Hash of `ProgressField`s: applied, high_watermark, caught_up, updated_ms."""
        return self._p + "progress"

    # events
    @property
    def events(self) -> str:
        """Hash: place (decimal offset) -> stored event (`encode_stored_event`)."""
        return self._p + "ev"

    @property
    def event_ids(self) -> str:
        """Hash: event id (`event_id_field`) -> space-separated places of the events with that
        id (one per source), in the order applied. The identity guard: an event whose
        (source, id) is stored here is a duplicate."""
        return self._p + "ids"

    @property
    def retractions(self) -> str:
        """Hash: retracted event_key -> place of the retraction that took effect (the first; a
        retraction and its target share a partition). Also what keeps a target that arrives
        after its retraction without effect."""
        return self._p + "retractions"

    @property
    def retracted(self) -> str:
        """Set of the places of stored events that are retracted."""
        return self._p + "retracted"

    @property
    def stream(self) -> str:
        """Stream of applied events: an entry `<place>-1` per identity, where it was first
        applied, its one field empty (`STREAM_FIELD`): the event is in `events`."""
        return self._p + "stream"

    # relations
    def relation(self, pair: str, part: str) -> str:
        """A part of a pair's ledger: days | status | partnership | contacts | plans."""
        return f"{self._p}rel:{_checked(pair)}:{_checked(part)}"

    def partners(self, country: str) -> str:
        """Hash: partner -> number of events: the relation index of a country."""
        return f"{self._p}partners:{_checked(country)}"

    # timelines (a country's is read as its pairs' and its solo entries merged: see
    # chancery.domain.timelines)
    def pair_timeline(self, pair: str) -> str:
        """Sorted set (lex) of `timeline_member`s: the pair's events."""
        return f"{self._p}tl:{_checked(pair)}"

    def solo_timeline(self, country: str) -> str:
        """Sorted set (lex) of `timeline_member`s: the events of the actor that are on none of
        its pairs' timelines (`TimelineRefs.solo`)."""
        return f"{self._p}tl1:{_checked(country)}"

    def timeline_partners(self, country: str) -> str:
        """Set of the actor's partners in pairs that have a timeline here (only ever added
        to: a partner whose timeline emptied is an empty read, never a wrong one)."""
        return f"{self._p}tlp:{_checked(country)}"

    # people, trips and visits
    def person(self, person_id: str) -> str:
        """Hash: event_key -> the raw event JSON of each `envoy.appointed` naming the person."""
        return f"{self._p}person:{_checked(person_id)}"

    def person_trips(self, person_id: str) -> str:
        """Hash: trip key -> order string of the trip's first event."""
        return f"{self._p}trips:{_checked(person_id)}"

    def trip_events(self, trip_key: str) -> str:
        """Hash: event_key -> the raw event JSON of each event of the trip."""
        return f"{self._p}trip:{_checked(trip_key)}:events"

    def trip_state(self, trip_key: str) -> str:
        return f"{self._p}trip:{_checked(trip_key)}"

    def visits(self, country: str) -> str:
        return f"{self._p}visits:{_checked(country)}"


# --- read-model values ------------------------------------------------------------------------
#
# Relation ledger parts (see chancery.domain.relations.PairLedger), one Redis structure each:
#   days         hash  "<YYYY-MM-DD>:<n|q1|q2|q3|q4|g>" -> integer   (HINCRBY; zero fields dropped)
#   status       hash  event_key -> StatusEntry JSON
#   partnership  hash  event_key -> PartnershipEntry JSON
#   plans        hash  event_key -> PlanEntry JSON
#   contacts     zset  (lex) `contact_member`s, ordered as the domain orders entries

RELATION_PARTS = ("days", "status", "partnership", "plans", "contacts")
DAY_METRICS = ("n", "q1", "q2", "q3", "q4", "g")


def day_fields(day: date, bucket: DayBucket) -> dict[str, int]:
    """The hash fields and increments that add `bucket` to `day`."""
    iso = day.isoformat()
    values = (bucket.count, *bucket.quads, bucket.goldstein_tenths)
    return {f"{iso}:{m}": v for m, v in zip(DAY_METRICS, values, strict=True) if v}


_DAY_METRIC_INDEX = {metric: i for i, metric in enumerate(DAY_METRICS)}


def decode_days(raw: Mapping[bytes, bytes]) -> dict[date, DayBucket]:
    """The day buckets of a `days` hash (fields of unknown metrics are ignored)."""
    fields: dict[str, list[int]] = {}
    index = _DAY_METRIC_INDEX
    for name, value in raw.items():
        iso, _, metric = name.decode().partition(":")
        at = index.get(metric)
        if at is None:
            continue
        values = fields.get(iso)
        if values is None:
            values = fields[iso] = [0, 0, 0, 0, 0, 0]
        values[at] = int(value)
    days: dict[date, DayBucket] = {}
    for iso, (n, q1, q2, q3, q4, g) in fields.items():
        if n or g or q1 or q2 or q3 or q4:
            # Integers read back from integers the projector wrote: nothing to validate.
            days[date.fromisoformat(iso)] = DayBucket.model_construct(
                count=n, quads=(q1, q2, q3, q4), goldstein_tenths=g
            )
    return days


def encode_entry(entry: StatusEntry | PartnershipEntry | PlanEntry) -> bytes:
    return entry.model_dump_json(exclude_none=True).encode()


_STATUS = TypeAdapter(StatusEntry)
_PARTNERSHIP = TypeAdapter(PartnershipEntry)
_PLAN = TypeAdapter(PlanEntry)


def decode_statuses(raw: Mapping[bytes, bytes]) -> dict[str, StatusEntry]:
    return {k.decode(): _STATUS.validate_json(v) for k, v in raw.items()}


def decode_partnerships(raw: Mapping[bytes, bytes]) -> dict[str, PartnershipEntry]:
    return {k.decode(): _PARTNERSHIP.validate_json(v) for k, v in raw.items()}


def decode_plans(raw: Mapping[bytes, bytes]) -> dict[str, PlanEntry]:
    return {k.decode(): _PLAN.validate_json(v) for k, v in raw.items()}


# --- members of the sorted sets: the domain's order in few bytes ------------------------------
#
# A timeline or contacts member starts with the event's place in the domain's total order
# (chancery.domain.ordering: when it occurred, then source, then id), encoded so that the
# members' lexicographic order is that order:
#
#   <sort code><source code><id> <tail>
#
# - sort code (`sort_code`): the start of `occurred` as 10 characters of an ordered base 64
#   (microseconds since 1000-01-01), the precision rank (one digit), then what orders times of
#   one start and precision: for an interval its end (10 characters), for a date-time its
#   unit (0 a microsecond, 1 a second, 2 a minute); a day, week or month ends where its
#   start says. Day bounds (`day_code`) are 10-character prefixes.
# - source code: one character. The sources of `SOURCES` (sorted) have a code of their own
#   (the odd codes); any other source is the even code of its place among them, then the
#   source itself and a space. Either way the order is the sources' order.
# - id, then a space (sources and ids hold no space, so ' ' ends them in order).
# - tail: in a timeline, the type's code (`TYPE_CODES`) and the place of the event (base 64);
#   in contacts, the kind's code and, for a date-time or interval, the text of `when`.
#
# The API's cursors and timeline entries keep the public form, `<order string> <type>`
# (`timeline_member`): `member_prefix` turns one into the stored form's order prefix.

_DIGITS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
"""64 characters in ascending ASCII order: fixed-width numbers in them sort as numbers."""
_VALUE = {c: i for i, c in enumerate(_DIGITS)}
_TIME_WIDTH = 10  # 64**10 microseconds: more than the years 1000-9999 span
_EPOCH = datetime(1000, 1, 1, tzinfo=UTC)
_DAY_RANK = str(PRECISION_RANK["day"])
_INTERVAL_RANK = str(PRECISION_RANK["interval"])
_DATETIME_RANK = str(PRECISION_RANK["datetime"])
_UNITS = {timedelta(microseconds=1): "0", timedelta(seconds=1): "1", timedelta(minutes=1): "2"}
_UNIT_OF = {code: unit for unit, code in _UNITS.items()}

SOURCES: tuple[str, ...] = (
    "https://doi.org/10.7910/DVN/28075",  # ICEWS, as `chancery import icews` writes it
    "https://www.gdeltproject.org/",  # GDELT, as `chancery import gdelt` writes it
)
"""Sources with a one-character code in members (sorted). Part of the layout."""
_SOURCE_CODE = {source: chr(0x22 + 2 * i) for i, source in enumerate(SOURCES)}

TYPE_CODES: Mapping[str, str] = {
    name: chr(ord("A") + i)
    for i, name in enumerate(
        (
            "diplomacy.envoy.appointed",
            "diplomacy.event.coded",
            "diplomacy.event.retracted",
            "diplomacy.incident.occurred",
            "diplomacy.meeting.held",
            "diplomacy.partnership.declared",
            "diplomacy.proposal.made",
            "diplomacy.proposal.rejected",
            "diplomacy.relations.changed",
            "diplomacy.stance.declared",
            "diplomacy.statement.made",
            "diplomacy.visit.announced",
            "diplomacy.visit.cancelled",
            "diplomacy.visit.completed",
            "diplomacy.visit.leg.completed",
            "diplomacy.visit.leg.started",
            "diplomacy.visit.postponed",
            "diplomacy.visit.rescheduled",
        )
    )
}
"""Each event type's one-character code in timeline members. Part of the layout: a new
event type is a new layout."""
_TYPE_OF_CODE = {code: name for name, code in TYPE_CODES.items()}

KIND_CODES: Mapping[str, str] = {"meeting": "m", "phone": "p", "video": "v", "visit": "w"}
_KIND_OF_CODE = {code: kind for kind, code in KIND_CODES.items()}


def _number(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 64)
        digits.append(_DIGITS[digit])
    if value:
        raise ValueError("a number too large for its width")
    return "".join(reversed(digits))


def _read_number(text: str) -> int:
    value = 0
    for c in text:
        value = value * 64 + _VALUE[c]
    return value


def _time_code(instant: datetime) -> str:
    delta = instant - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return _number(micros, _TIME_WIDTH)


def _sort_code(start: datetime, rank: str, end: datetime) -> str:
    code = _time_code(start) + rank
    if rank == _INTERVAL_RANK:
        return code + _time_code(end)
    if rank == _DATETIME_RANK:
        unit = _UNITS.get(end - start)
        if unit is None:
            raise ValueError(f"a date-time that lasts {end - start}")
        return code + unit
    return code


_SORT_CODES: dict[str, str] = {}


def sort_code(when: When) -> str:
    """The order of `when` (as `When.sort_key` orders) in 11 to 21 characters."""
    code = _SORT_CODES.get(when.text)
    if code is None:
        if len(_SORT_CODES) > 100_000:
            _SORT_CODES.clear()
        rank = str(PRECISION_RANK[when.precision])
        code = _SORT_CODES[when.text] = _sort_code(when.start, rank, when.end)
    return code


def day_code(day: date) -> str:
    """What `day_bound` is to sort keys, to sort codes: the smallest code of anything that
    starts after `day`."""
    return _time_code(datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC))


def source_code(source: str) -> str:
    """`source` as members hold it: its own code, or its place's code, itself and a space."""
    code = _SOURCE_CODE.get(source)
    if code is not None:
        return code
    return chr(0x21 + 2 * bisect.bisect_left(SOURCES, source)) + source + " "


def order_code(when: When, source: str, event_id: str) -> str:
    """The members' order prefix of an event: `<sort code><source code><id> `."""
    return f"{sort_code(when)}{source_code(source)}{event_id} "


_PAIRS: list[str] = [a + b for a in _DIGITS for b in _DIGITS]
"""Every two-digit number, by value (the projector writes a place code per event)."""
_SHORT: list[str] = [*_DIGITS, *(p.lstrip("-") for p in _PAIRS[64:])]
"""The code of every place below 64**2: no leading zero digit."""


def place_code(place: int) -> str:
    """`place` in base 64 (`_DIGITS`), without leading zero digits."""
    if place < 4096:
        if place < 0:
            raise ValueError("places are offsets: zero or more")
        return _SHORT[place]
    if place < 16_777_216:  # 64**4: four digits at most, two table look-ups
        return _SHORT[place >> 12] + _PAIRS[place & 4095]
    return place_code(place >> 24) + _PAIRS[(place >> 12) & 4095] + _PAIRS[place & 4095]


def stored_timeline_member(order: str, event_type: str, place: int) -> str:
    """A timeline member: `order` (`order_code`), the type's code, the event's place."""
    return f"{order}{TYPE_CODES[event_type]}{place_code(place)}"


def timeline_place(member: bytes | str) -> int:
    """The place of the event a stored timeline member names."""
    text = member.decode() if isinstance(member, bytes) else member
    return _read_number(text[text.rindex(" ") + 2 :])


def timeline_type_code(member: str) -> str:
    """The type code a stored timeline member holds (to filter without loading the event)."""
    return member[member.rindex(" ") + 1]


def _split(member: str) -> tuple[str, str, str, str]:
    """(sort code, source, id, tail) of a stored member."""
    rank = member[_TIME_WIDTH]
    at = _TIME_WIDTH + 1 + (_TIME_WIDTH if rank == _INTERVAL_RANK else 0)
    at += 1 if rank == _DATETIME_RANK else 0
    code = ord(member[at]) - 0x21
    if code % 2:
        source = SOURCES[code // 2]
        at += 1
    else:
        space = member.index(" ", at)
        source, at = member[at + 1 : space], space + 1
    space = member.index(" ", at)
    return member[: _TIME_WIDTH + 1], source, member[at:space], member[space + 1 :]


def contact_member(entry: ContactEntry) -> str:
    """`<order code><kind code>[<when>]`: the text of `when` only where its start and
    precision do not give it (a date-time, an interval)."""
    when = entry.when
    text = str(when) if when.precision in ("datetime", "interval") else ""
    return order_code(when, entry.event.source, entry.event.id) + KIND_CODES[entry.kind] + text


def contact_member_of(order: str, kind: str, when: When) -> str:
    """`contact_member` from its parts: `order` is the event's `order_code`."""
    text = str(when) if when.precision in ("datetime", "interval") else ""
    return f"{order}{KIND_CODES[kind]}{text}"


def _when_of(code: str, text: str) -> When:
    """The `When` a contact member holds: its text, or the day, week or month its sort code
    starts (those three precisions say nothing more)."""
    if text:
        return When(text)
    start = _EPOCH + timedelta(microseconds=_read_number(code[:_TIME_WIDTH]))
    rank = int(code[_TIME_WIDTH])
    if rank == PRECISION_RANK["day"]:
        return When(start.date().isoformat())
    if rank == PRECISION_RANK["month"]:
        return When(start.strftime("%Y-%m"))
    year, week, _ = start.date().isocalendar()
    return When(f"{year:04d}-W{week:02d}")


def decode_contact(member: bytes) -> tuple[str, ContactEntry]:
    """(event_key, entry) from a contact member."""
    code, source, id_, tail = _split(member.decode())
    entry = ContactEntry.model_validate(
        {
            "when": _when_of(code, tail[1:]),
            "event": {"source": source, "id": id_},
            "kind": _KIND_OF_CODE[tail[0]],
        }
    )
    return entry.event.key, entry


# Timelines as the API names their entries (and its cursors hold them): `<order string>
# <type>`, the domain's order as text, then the type.


def timeline_member(order_string: str, event_type: str) -> str:
    return f"{order_string} {event_type}"


def timeline_member_type(member: str) -> str:
    """The event type a public timeline member ends with."""
    return member.rsplit(" ", 1)[1]


_SORT_KEY = re.compile(r"^(.{27})/([0-4])/(.{27})$")


def member_prefix(public_member: str) -> str:
    """The stored members' order prefix (`order_code`) of a public timeline member: the
    members before and after it in the domain's order are the stored members before and
    after this prefix. Raises ValueError for a string that is not a timeline member."""
    parts = public_member.split(" ")
    if len(parts) != 4 or not all(parts):
        raise ValueError("not a timeline member")
    sort_key, source, event_id, _ = parts
    m = _SORT_KEY.fullmatch(sort_key)
    if m is None:
        raise ValueError("not a timeline member")
    start = datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    end = datetime.strptime(m[3], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return f"{_sort_code(start, m[2], end)}{source_code(source)}{event_id} "


# Stored events: the event's JSON as the log holds it, compressed (zstd, without the frame's
# magic number, content size or checksum) with the layout's dictionary. A copy recorded
# earlier than the one first applied (see chancery.domain.history.earlier_copy) takes that
# one's place but not its offset: its value is `@<its offset> ` and the compressed copy.

DICTIONARY_PATH = Path(__file__).parent / "data" / f"stored-events-{LAYOUT}.zdict"
"""The compression dictionary of this layout (made by bench/layout_dictionary.py)."""
COMPRESSION_LEVEL = 1
MIN_MATCH = 5
"""zstd's fastest level, but matching runs of 5 bytes (its default there is longer): nearly
the bytes of level 3 for less CPU (docs/performance.md). Decompression does not depend on
either: a change here is no layout change."""


@functools.cache
def _dictionary() -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(DICTIONARY_PATH.read_bytes())


@functools.cache
def _compressor() -> zstandard.ZstdCompressor:
    params = zstandard.ZstdCompressionParameters.from_level(
        COMPRESSION_LEVEL,
        min_match=MIN_MATCH,
        format=zstandard.FORMAT_ZSTD1_MAGICLESS,
        write_content_size=False,
        write_checksum=False,
        write_dict_id=False,
    )
    return zstandard.ZstdCompressor(dict_data=_dictionary(), compression_params=params)


@functools.cache
def _decompressor() -> zstandard.ZstdDecompressor:
    return zstandard.ZstdDecompressor(
        dict_data=_dictionary(), format=zstandard.FORMAT_ZSTD1_MAGICLESS
    )


_MOVED = b"@"


def encode_stored_event(raw: bytes, offset: int | None = None) -> bytes:
    """The stored value of the event `raw`; `offset`: where this copy is in the log, when
    that is not the place it is stored under."""
    frame = _compressor().compress(raw)
    # Without a magic number, content size, checksum or dictionary id, a frame begins with
    # a zero header byte: never `@`.
    if not frame or frame[0] != 0:
        raise ValueError("an unexpected zstd frame header")
    return frame if offset is None else b"@%d " % offset + frame


def encode_stored_events(raws: list[bytes]) -> list[bytes]:
    """`encode_stored_event` of each of `raws`, stored under their own offsets, in one call
    into zstd (the projector stores every event it applies)."""
    if not raws:
        return []
    # (its stub types the list as invariant over every kind of buffer)
    compressed = _compressor().multi_compress_to_buffer(
        cast("list[bytes | bytearray | memoryview]", raws)
    )
    frames = [compressed[i].tobytes() for i in range(len(compressed))]
    if any(frame[0] for frame in frames):  # see encode_stored_event
        raise ValueError("an unexpected zstd frame header")
    return frames


def decode_stored_event(value: bytes, place: int) -> tuple[int, bytes]:
    """(offset, raw event JSON) of a stored value kept under `place`."""
    if value[:1] == _MOVED:
        offset, _, frame = value[1:].partition(b" ")
        return int(offset), _decompress(frame)
    return place, _decompress(value)


def _decompress(frame: bytes) -> bytes:
    return _decompressor().decompressobj().decompress(frame)


PLACE_FIELD_FORMAT = "%d"
"""How a place is written as an `events` hash field (the projector's apply script writes
them with Lua's `string.format` of this)."""


def place_field(place: int) -> str:
    """The `events` hash field of a place."""
    return PLACE_FIELD_FORMAT % place


def event_id_field(event_id: str) -> str:
    """The `ids` index's field for an event id alone (ids are unique per source, not
    globally): the id itself, as the contract validated it (at most 128 characters, no
    space). A hash field, never a key: no digest needed, and none to compute per event."""
    return event_id


def event_id_fields(event_ids: list[str]) -> list[str]:
    """`event_id_field` of each of `event_ids`: the ids themselves (the projector makes one
    per event)."""
    return event_ids


def decode_places(value: bytes | str) -> list[int]:
    """The places an `event_ids` field holds: space-separated, in the order applied."""
    text = value.decode() if isinstance(value, bytes) else value
    return [int(p) for p in text.split(" ")]


# Trips: one per (traveller, trip id); state JSON, events hash, visits index.


def trip_key(person_id: str, trip_id: str) -> str:
    return f"{_checked(person_id)}.{_checked(trip_id)}"


_TRIP = TypeAdapter(Trip)


def encode_trip(trip: Trip) -> bytes:
    return trip.model_dump_json(exclude_none=True).encode()


def decode_trip(raw: bytes) -> Trip:
    return _TRIP.validate_json(raw)


def visit_member(when: When, trip: str, country: str, direction: str) -> str:
    """`<sort key> <trip key> <leg country> <to|from>` in a country's visits index."""
    return f"{when.sort_key()} {trip} {country} {direction}"


def visit_members(trip: str, state: Trip) -> list[tuple[str, str]]:
    """(country whose visits index holds it, member) for every leg of the trip `state`,
    stored under trip key `trip`: see `Trip.visits`."""
    return [
        (v.country, visit_member(v.when, trip, v.leg_country, v.direction)) for v in state.visits()
    ]


@dataclass(frozen=True)
class VisitItem:
    sort_key: str
    trip_key: str
    country: str
    direction: str


def decode_visit_member(member: bytes) -> VisitItem:
    sort_key, trip, country, direction = member.decode().split(" ")
    return VisitItem(sort_key, trip, country, direction)


def visit_member_direction(member: str) -> str:
    """`to` or `from`, as a visit member ends (to filter by direction without decoding)."""
    return member.rsplit(" ", 1)[1]


# The stream of applied events: entry id `<place>-1`, one empty field: the event is the
# partition's `events` entry of that place. (Streams of layout 1 are never read as these.)

STREAM_FIELD = b"p"
STREAM_ID_SUFFIX = "-1"
"""What follows the offset in an entry id (an entry per offset: the sequence is always 1)."""


def stream_id(offset: int) -> str:
    return f"{offset}{STREAM_ID_SUFFIX}"


def offset_of_stream_id(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[0])


# --- webhooks: subscriptions, their positions, recent attempts and leases ---------------------
#
# Not read models: the API writes a subscription when a client creates it, and the delivery
# worker (`chancery deliver`) writes its progress. Everything of one subscription shares the
# hash tag `{<subscription id>}`, so the worker's fenced write (lease check, positions,
# attempts, state) touches one slot on Redis Cluster. The index is a key of its own.

HOOKS_ROOT = f"{ROOT}:hooks:v1:"

HOOKS_INDEX = f"{HOOKS_ROOT}subscriptions"
"""Set of every subscription id (what the worker and `chancery status` walk)."""


class HookSpace:
    """The keys of one webhook subscription (`sub_<hex>`, validated before it gets here)."""

    __slots__ = ("_p", "subscription_id")

    def __init__(self, subscription_id: str) -> None:
        self.subscription_id = subscription_id
        self._p = f"{HOOKS_ROOT}{{{_checked(subscription_id)}}}:"

    @property
    def config(self) -> str:
        """The `Subscription` as created (`encode_subscription`), secret included."""
        return self._p + "config"

    @property
    def state(self) -> str:
        """Hash of `HookStateField`s: active or paused, why, the last error, failing since."""
        return self._p + "state"

    @property
    def position(self) -> str:
        """Hash: partition -> the last offset delivered (or passed over by the filter); a
        partition absent starts at its beginning. Written only by the lease holder."""
        return self._p + "position"

    @property
    def deliveries(self) -> str:
        """List of `DeliveryAttempt`s (`encode_attempt`), newest first, capped."""
        return self._p + "deliveries"

    @property
    def lease(self) -> str:
        """The token of the worker delivering this subscription; expires unless renewed."""
        return self._p + "lease"

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.config, self.state, self.position, self.deliveries, self.lease)


class HookStateField:
    """The fields of a subscription's `HookSpace.state` hash (a `SubscriptionStatus`)."""

    STATE = "state"
    REASON = "reason"
    LAST_ERROR = "last_error"
    FAILING_SINCE = "failing_since"
    CHANGED = "changed"


def encode_subscription(subscription: Subscription) -> bytes:
    return subscription.model_dump_json().encode()


def decode_subscription(raw: bytes) -> Subscription:
    return Subscription.model_validate_json(raw)


def encode_hook_status(status: SubscriptionStatus) -> dict[str, str]:
    """The state hash's fields of `status`; an absent value is an empty string."""
    return {
        HookStateField.STATE: status.state.value,
        HookStateField.REASON: status.reason or "",
        HookStateField.LAST_ERROR: status.last_error or "",
        HookStateField.FAILING_SINCE: status.failing_since.isoformat()
        if status.failing_since
        else "",
        HookStateField.CHANGED: status.changed.isoformat() if status.changed else "",
    }


def decode_hook_status(raw: Mapping[bytes, bytes]) -> SubscriptionStatus:
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    return SubscriptionStatus.model_validate(
        {
            "state": fields.get(HookStateField.STATE) or SubscriptionState.ACTIVE.value,
            "reason": fields.get(HookStateField.REASON) or None,
            "last_error": fields.get(HookStateField.LAST_ERROR) or None,
            "failing_since": fields.get(HookStateField.FAILING_SINCE) or None,
            "changed": fields.get(HookStateField.CHANGED) or None,
        }
    )


def decode_hook_position(raw: Mapping[bytes, bytes]) -> dict[int, int]:
    return {int(p): int(o) for p, o in raw.items()}


_ATTEMPT = TypeAdapter(DeliveryAttempt)


def encode_attempt(attempt: DeliveryAttempt) -> bytes:
    return attempt.model_dump_json(exclude_none=True).encode()


def decode_attempt(raw: bytes) -> DeliveryAttempt:
    return _ATTEMPT.validate_json(raw)
