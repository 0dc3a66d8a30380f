"""The CloudEvents 1.0 envelope every Chancery event travels in, and event identity.

Structured JSON mode: the attributes and `data` in one JSON object. Chancery requires
`time` (when the source reported the event) and always sends `datacontenttype`. Two
extension attributes are set by ingest and refused from clients:

- `recordedtime`: when ingest accepted the event (RFC 3339, UTC): the "known at" axis;
- `partitionkey`: the CloudEvents Partitioning extension: the Kafka record key.

Any other extension attribute is refused (`extra="forbid"`, here and in every payload): a
contract that silently drops what it does not know drifts from its producers unnoticed.

Identity is (`source`, `id`), as CloudEvents defines it. `event_key` hashes that pair; the
digest is the only form of an identity that ever appears in a Redis key.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from .errors import field_error
from .plain_rules import Plain, same_check_as
from .when import When, _parsed

SPEC_VERSION = "1.0"
DATA_CONTENT_TYPE = "application/json"
EXTENSIONS = ("recordedtime", "partitionkey")
"""Extension attributes only the service may set."""

OCCURRED_TOLERANCE = timedelta(days=1)
"""How far `data.occurred` may start after `time`: reports and clocks disagree by time zone."""

EventId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@~-]*$"),
]
"""A producer's event id: letters, digits and `._:@~-`, unique within its source."""

Source = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=512, pattern=r"^[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+$"
    ),
]
"""The producer's URI-reference (RFC 3986 characters only, no spaces)."""

PartitionKey = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_.|-]+$")
]

_RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
_RFC3339 = re.compile(_RFC3339_PATTERN)
# Python's `$` also matches before a final newline; the Rust pattern says so explicitly, so
# both refuse exactly the same texts with the same errors (the datetime parser then refuses
# the newline).
_RFC3339_RUST_PATTERN = _RFC3339_PATTERN.removesuffix("$") + r"\n?$"
_RFC3339_ERROR = "rfc3339"
_RFC3339_MESSAGE = "expected an RFC 3339 date-time with an offset, like 2023-05-12T09:30:00+08:00"
_UTC_ERROR = "recordedtime_utc"
_UTC_MESSAGE = "recordedtime is written in UTC"


def _rfc3339(value: Any) -> Any:
    """Only RFC 3339 text (or a datetime): pydantic alone would also take numbers and dates."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise PydanticCustomError(_RFC3339_ERROR, _RFC3339_MESSAGE)
    return value


def _in_utc(value: datetime) -> datetime:
    if value.utcoffset() != timedelta(0):
        raise PydanticCustomError(_UTC_ERROR, _UTC_MESSAGE)
    return value


class _Rfc3339:
    """An aware datetime written as RFC 3339 text; with `utc`, its offset must be zero.

    JSON input (the log's decoder, ingest's batch path) is checked in pydantic-core: the
    text's shape by pattern, then the datetime, then the offset, with no Python call. Python
    input (a dict, or a datetime) goes through the same checks as functions. Both raise the
    same error types (`rfc3339`, pydantic's datetime errors, `recordedtime_utc`).
    """

    def __init__(self, *, utc: bool = False) -> None:
        self.utc = utc

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        aware = core_schema.datetime_schema(tz_constraint="aware")
        text = core_schema.custom_error_schema(
            core_schema.str_schema(pattern=_RFC3339_RUST_PATTERN),
            custom_error_type=_RFC3339_ERROR,
            custom_error_message=_RFC3339_MESSAGE,
        )
        steps: list[core_schema.CoreSchema] = [text, aware]
        python: core_schema.CoreSchema = core_schema.no_info_before_validator_function(
            _rfc3339, aware
        )
        if self.utc:
            steps.append(
                core_schema.custom_error_schema(
                    core_schema.datetime_schema(tz_constraint=0),
                    custom_error_type=_UTC_ERROR,
                    custom_error_message=_UTC_MESSAGE,
                )
            )
            python = core_schema.no_info_after_validator_function(_in_utc, python)
        return core_schema.json_or_python_schema(
            json_schema=core_schema.chain_schema(steps),
            python_schema=python,
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(core_schema.datetime_schema(tz_constraint="aware"))


# The texts pydantic reads as a datetime and writes back unchanged: six digits of fraction
# or none, an offset of zero written Z (the plain twin of the contract takes only these).
_CANONICAL_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_ZERO_FRACTION = ".000000"


@lru_cache(maxsize=4096)
def _canonical_time(text: str) -> datetime | None:
    """The datetime of `text` (matched by `_CANONICAL_TIME`) when pydantic would write it
    back as it is; None when pydantic would refuse or rewrite it. Reports share times (a
    GDELT export, one per quarter of an hour), so the answers are kept, bounded."""
    if text[19:26] == _ZERO_FRACTION or text.endswith(("+00:00", "-00:00")):
        return None
    if not text.endswith("Z") and (int(text[-5:-3]) > 23 or int(text[-2:]) > 59):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@lru_cache(maxsize=4096)  # a hit costs no Python frame
def _is_canonical_time(text: str) -> bool:
    return _canonical_time(text) is not None


Timestamp = Annotated[
    datetime,
    _Rfc3339(),
    Plain(
        base=Annotated[str, StringConstraints(pattern=_CANONICAL_TIME)], check=_is_canonical_time
    ),
]
"""An RFC 3339 date-time with its offset."""

UtcTimestamp = Annotated[datetime, _Rfc3339(utc=True)]
"""An RFC 3339 date-time in UTC (offset zero)."""


_BLAKE2B_128 = hashlib.blake2b(digest_size=16)


def blake2b_128(data: bytes) -> str:
    """The BLAKE2b digest of `data` in 16 bytes, as 32 hex characters. A copy of a hash set up
    once: setting one up cost a fifth of hashing an event, and ingest and the projector hash
    every event (its identity, and ingest its content)."""
    digest = _BLAKE2B_128.copy()
    digest.update(data)
    return digest.hexdigest()


def event_key(source: str, id: str) -> str:
    """The digest of an identity: 32 hex characters (BLAKE2b, 16 bytes).

    Neither part can contain a newline, so joining with one is unambiguous.
    """
    return blake2b_128(f"{source}\n{id}".encode())


class EventRef(BaseModel):
    """Names an event by its identity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Source
    id: EventId

    @property
    def key(self) -> str:
        return event_key(self.source, self.id)

    def __str__(self) -> str:
        return f"{self.source}#{self.id}"


class Payload(BaseModel):
    """Base of every event's `data`: frozen, and no field it does not declare."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def when(self) -> When | None:
        """When the event occurred, if the type says (a retraction does not)."""
        return None


class EventEnvelope(BaseModel):
    """The attributes shared by every event type. Subclasses narrow `type` and `data`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"]
    id: EventId
    source: Source
    type: Annotated[str, StringConstraints(max_length=64, pattern=r"^diplomacy(\.[a-z]+)+$")]
    subject: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    time: Timestamp
    datacontenttype: Literal["application/json"] = "application/json"
    recordedtime: UtcTimestamp | None = None
    partitionkey: PartitionKey | None = None
    data: Payload

    @field_validator("data")
    @classmethod
    def _not_occurred_after_reported(cls, data: Payload, info: ValidationInfo) -> Payload:
        reported = info.data.get("time")
        occurred = data.when
        if reported is not None and occurred is not None and _too_late(occurred, reported):
            raise field_error(
                ("occurred",),
                "occurred_after_reported",
                "the event cannot occur ({occurred}) after it was reported ({time}); "
                "one day of tolerance is allowed",
                str(occurred),
                occurred=str(occurred),
                time=reported.isoformat(),
            )
        return data

    @property
    def ref(self) -> EventRef:
        return EventRef(source=self.source, id=self.id)

    @property
    def key(self) -> str:
        """`event_key(source, id)`."""
        return event_key(self.source, self.id)


def _too_late(occurred: When, reported: datetime) -> bool:
    # `start - tolerance > reported`, not `start > reported + tolerance`: the same test,
    # without overflowing when `time` is the last day a datetime can hold.
    return occurred.start - OCCURRED_TOLERANCE > reported


@same_check_as(EventEnvelope._not_occurred_after_reported)
def _plain_not_occurred_after_reported(event: Any) -> bool:
    # A plain payload has no `when`: every payload whose `when` is not None has it from its
    # `occurred` field (a unit test holds the two together).
    occurred = getattr(event.data, "occurred", None)
    reported = _canonical_time(event.time)
    return occurred is None or reported is None or not _too_late(_parsed(occurred), reported)
