"""One decoded record of the event log, as the projector's stages pass it along."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from chancery.contract import Event


class LogRecord(NamedTuple):
    """Immutable; a named tuple, built in C, rather than a frozen dataclass, which sets each
    field through `object.__setattr__`: the projector makes one per event."""

    partition: int
    offset: int
    key: bytes | None  # the Kafka record key
    value: bytes  # the event exactly as it is in the log
    event: Event
    ident: str  # event_key(source, id): the identity, as Redis keys spell it
    headers: Sequence[tuple[str, bytes]] = ()  # the record's headers, as they came
