"""Every Redis key Chancery uses, and the codec of every value stored under one.

No other module builds a key. Builders take validated values only: country codes and
person slugs validated by the contract, and event identities as `event_key` digests, so
no caller input can reach Redis as a pattern, a hash tag or a separator. `_checked`
enforces that at the door.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, TypeAdapter

from chancery.contract import When
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
    """Hash of `MetaField`s: partitions, topic, state (a `VersionState`), created_ms, ready_ms."""
    return f"{ROOT}:rm:v{version}:meta"


class MetaField:
    """The fields of a version's `version_meta` hash."""

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
        """Hash: event_key -> stored event (the envelope and its position)."""
        return self._p + "events"

    @property
    def event_ids(self) -> str:
        """Hash: event id (`event_id_field`) -> space-separated event_keys with that id."""
        return self._p + "ids"

    @property
    def retracted(self) -> str:
        """Set of event_keys retracted (so a late-arriving target stays without effect)."""
        return self._p + "retracted"

    @property
    def retractions(self) -> str:
        """Hash: retracted event_key -> event_key of the retraction that took effect (the
        first; a retraction and its target share a partition, see `retracted`)."""
        return self._p + "retractions"

    @property
    def stream(self) -> str:
        """Stream of applied events; entry id `<offset>-1`, so positions and ids agree.
        Fields: see `STREAM_KEY`."""
        return self._p + "stream"

    # relations
    def relation(self, pair: str, part: str) -> str:
        """A part of a pair's ledger: days | status | partnership | contacts | plans."""
        return f"{self._p}rel:{_checked(pair)}:{_checked(part)}"

    def partners(self, country: str) -> str:
        """Hash: partner -> number of events: the relation index of a country."""
        return f"{self._p}partners:{_checked(country)}"

    # timelines
    def pair_timeline(self, pair: str) -> str:
        return f"{self._p}tl:pair:{_checked(pair)}"

    def country_timeline(self, country: str) -> str:
        return f"{self._p}tl:country:{_checked(country)}"

    # people, trips and visits
    def person(self, person_id: str) -> str:
        """Hash: event_key -> the raw event JSON of each `envoy.appointed` naming the person
        (the bytes alone, unlike `events`, whose values are `<offset> <json>`)."""
        return f"{self._p}person:{_checked(person_id)}"

    def person_trips(self, person_id: str) -> str:
        """Hash: trip key -> order string of the trip's first event."""
        return f"{self._p}trips:{_checked(person_id)}"

    def trip_events(self, trip_key: str) -> str:
        """Hash: event_key -> the raw event JSON of each event of the trip (the bytes alone,
        unlike `events`, whose values are `<offset> <json>`)."""
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
#   contacts     zset  (lex) contact member, ordered as the domain orders entries

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


def contact_member(entry: ContactEntry) -> str:
    """`<sort key> <source> <id> <kind> <when>`: lexicographic order is the domain's order
    (sort keys have a fixed width; no part contains a space)."""
    ev = entry.event
    return f"{entry.when.sort_key()} {ev.source} {ev.id} {entry.kind} {entry.when}"


def contact_member_of(order_string: str, kind: str, when: str) -> str:
    """`contact_member` from its parts: `order_string` is the domain's order string of the
    event (`<sort key> <source> <id>`), `when` the text of its `occurred`."""
    return f"{order_string} {kind} {when}"


def decode_contact(member: bytes) -> tuple[str, ContactEntry]:
    """(event_key, entry) from a contact member."""
    _, source, id_, kind, when = member.decode().split(" ")
    entry = ContactEntry.model_validate(
        {"when": When(when), "event": {"source": source, "id": id_}, "kind": kind}
    )
    return entry.event.key, entry


# Timelines: zset (lex) of `<order string> <type>`: the domain's total order, then the type.


def timeline_member(order_string: str, event_type: str) -> str:
    return f"{order_string} {event_type}"


@dataclass(frozen=True)
class TimelineItem:
    sort_key: str
    source: str
    id: str
    type: str

    @property
    def event_key(self) -> str:
        from chancery.contract import event_key

        return event_key(self.source, self.id)


def decode_timeline_member(member: bytes) -> TimelineItem:
    sort_key, source, id_, type_ = member.decode().split(" ")
    return TimelineItem(sort_key, source, id_, type_)


def timeline_member_type(member: str) -> str:
    """The event type a timeline member ends with (to filter by type without decoding)."""
    return member.rsplit(" ", 1)[1]


# Stored events: `<offset> <event JSON as it is in the log>`; the partition is the key's own.


def encode_stored_event(offset: int, raw: bytes) -> bytes:
    return b"%d " % offset + raw


def decode_stored_event(value: bytes) -> tuple[int, bytes]:
    offset, _, raw = value.partition(b" ")
    return int(offset), raw


def event_id_field(event_id: str) -> str:
    """The `ids` index's field for an event id alone (ids are unique per source, not
    globally): the id itself, as the contract validated it (at most 128 characters, no
    space). A hash field, never a key: no digest needed, and none to compute per event."""
    return event_id


def decode_event_keys(value: bytes) -> list[str]:
    """The event keys an `event_ids` field holds: space-separated, in the order applied."""
    return value.decode().split(" ")


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


# The stream of applied events: entry id `<offset>-1`; fields k (the event_key: the event is
# in the partition's `events` hash), t (type), a (actors, space-separated). Entries of older
# releases, which may still be in a stream, carry the event JSON itself in `e` instead of `k`
# (read, never written).

STREAM_KEY = b"k"
STREAM_EVENT = b"e"
STREAM_TYPE = b"t"
STREAM_ACTORS = b"a"
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
