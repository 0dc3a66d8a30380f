"""Every Redis key Chancery uses, and the codec of every value stored under one.

No other module builds a key. Builders take validated values only: country codes and
person slugs validated by the contract, and event identities as `event_key` digests, so
no caller input can reach Redis as a pattern, a hash tag or a separator. `_checked`
enforces that at the door.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

ROOT = "chancery"

# Key parts are short, printable and free of Redis glob and hash-tag characters.
_SAFE_PART = re.compile(r"^[A-Za-z0-9_.|-]{1,128}$")


class UnsafeKeyPartError(ValueError):
    """A value that must not become part of a Redis key."""


def _checked(part: str) -> str:
    if not _SAFE_PART.match(part):
        raise UnsafeKeyPartError(f"refusing {part[:40]!r} as part of a Redis key")
    return part


# --- ingest: idempotency records ----------------------------------------------------------


def idempotency(event_key: str) -> str:
    """Ingest's record of what became of (source, id): `event_key` is the contract's digest."""
    return f"{ROOT}:ingest:v1:idem:{_checked(event_key)}"


class IdempotencyRecord(BaseModel):
    """What ingest remembers of an event it was given: pending while being published."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    digest: str
    partition_key: str
    state: str  # "pending" | "done"
    claim: str | None = None  # nonce of the request holding a pending claim
    partition: int | None = None
    offset: int | None = None

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> IdempotencyRecord:
        return cls.model_validate_json(raw)


# --- read models: the pointer, versions, and each partition's share ---------------------------

ACTIVE_VERSION = f"{ROOT}:rm:active"
"""The version the API serves. Flipped in one SET when a rebuild completes."""

VERSION_COUNTER = f"{ROOT}:rm:versions"
"""INCR gives the next version number for a rebuild."""


def version_meta(version: int) -> str:
    """Hash: partitions, topic, state (building|ready), created, ready_at."""
    return f"{ROOT}:rm:v{version}:meta"


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
        """Hash: applied, high_watermark, caught_up, updated_ms (for status and lag)."""
        return self._p + "progress"

    # events
    @property
    def events(self) -> str:
        """Hash: event_key -> stored event (the envelope and its position)."""
        return self._p + "events"

    @property
    def event_ids(self) -> str:
        """Hash: digest of an event id -> space-separated event_keys with that id."""
        return self._p + "ids"

    @property
    def retracted(self) -> str:
        """Set of event_keys retracted (so a late-arriving target stays without effect)."""
        return self._p + "retracted"

    @property
    def stream(self) -> str:
        """Stream of applied events; entry id `<offset>-1`, so positions and ids agree."""
        return self._p + "stream"

    # relations
    def relation(self, pair: str, part: str) -> str:
        """A part of a pair's ledger: days | status | partnership | contacts | planned."""
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
        return f"{self._p}person:{_checked(person_id)}"

    def person_trips(self, person_id: str) -> str:
        return f"{self._p}trips:{_checked(person_id)}"

    def trip_events(self, trip_key: str) -> str:
        return f"{self._p}trip:{_checked(trip_key)}:events"

    def trip_state(self, trip_key: str) -> str:
        return f"{self._p}trip:{_checked(trip_key)}"

    def visits(self, country: str) -> str:
        return f"{self._p}visits:{_checked(country)}"
