"""The API keys of a running service, as the keys file says now: created and revoked keys
take effect within about a second, without a restart.

`chancery keys create` and `revoke` rewrite the file in one rename (`KeyRing.save`). A
service's ring checks the file's identity (inode, size, modification time) at most once
per `poll_s`, when a credential is next verified, and reads it again when it changed. One
`stat` a second costs nothing a request would notice, works on every filesystem (no inotify
or kqueue), and needs no task of its own in the services' lifespans.

A file that does not parse (a hand edit half done) is logged and the ring keeps the keys it
had: the file is read again once it changes. A file that is gone holds no keys, as at start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from chancery.auth import KeyRing, read_keys

logger = logging.getLogger(__name__)

POLL_S = 1.0

Signature = tuple[int, int, int] | None
"""(inode, size, mtime in ns) of the keys file; None when there is none."""


def _signature(path: Path) -> Signature:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class WatchedKeyRing(KeyRing):
    """The keys file's ring, read again whenever the file changes."""

    def __init__(
        self,
        path: Path,
        *,
        poll_s: float = POLL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._poll_s = poll_s
        self._clock = clock
        self._seen = _signature(path)
        super().__init__(read_keys(path))  # a bad file at start fails the start, as before
        self._generation = 0
        self._checked = clock()

    @property
    def generation(self) -> int:
        return self._generation

    def refresh(self) -> int:
        now = self._clock()
        if now - self._checked < self._poll_s:
            return self._generation
        self._checked = now
        seen = _signature(self._path)
        if seen == self._seen:
            return self._generation
        self._seen = seen
        try:
            keys = read_keys(self._path)
        except (OSError, ValidationError, ValueError) as exc:
            logger.error(
                "the keys file %s cannot be read (%s); keeping the keys it had", self._path, exc
            )
            return self._generation
        self._by_id = {k.key_id: k for k in keys}
        self._generation += 1
        logger.info("the keys file %s changed: %d key(s)", self._path, len(keys))
        return self._generation
