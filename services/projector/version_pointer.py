"""The read-model version this instance writes, and (live) the pointer it follows.

The API serves the version named by `keyspace.ACTIVE_VERSION`. A live projector writes that
version and follows the pointer when it moves (a rebuild flipped it) or disappears (Redis was
emptied: a new version is built from the start of the log). A rebuild writes the version it
was given and never looks at the pointer.
"""

from __future__ import annotations

import asyncio
import logging
import time

from chancery.keyspace import VersionState

from .metrics import ProjectorMetrics
from .store import ReadModelWriter

logger = logging.getLogger(__name__)

POINTER_CHECK_S = 0.5


class VersionPointer:
    """The version written and whether it is ready; the pointer, read in the background."""

    def __init__(self, writer: ReadModelWriter, metrics: ProjectorMetrics, partitions: int) -> None:
        self._writer = writer
        self._metrics = metrics
        self._partitions = partitions
        self.version = 0
        self.ready = False
        self._last_check = 0.0
        self._check_now = False
        self._read: asyncio.Future[int | None] | None = None  # sent, not yet looked at

    async def use(self, version: int) -> None:
        """Write `version` from now on (its readiness as Redis has it)."""
        self.version = version
        info = await self._writer.version_info(version)
        self.ready = info is not None and info.state == VersionState.READY
        self._metrics.version.set(version)

    def check_now(self) -> None:
        """Have `moved` answer True at once: the pointer may have gone (keys vanished)."""
        self._check_now = True

    def moved(self) -> bool:
        """True when the pointer must be followed now: at once when a check is urgent, else
        once a read of it, sent when the check fell due, has come back naming another version.

        The read is collected in a later round rather than awaited: following the pointer
        means settling every script in flight first (a version change unloads every
        partition), which the loop cannot afford every `POINTER_CHECK_S` just to learn that
        nothing moved.
        """
        if self._check_now:
            return True
        read = self._read
        if read is None:
            if time.monotonic() - self._last_check >= POINTER_CHECK_S:
                self._last_check = time.monotonic()
                self._read = asyncio.ensure_future(self._writer.active_version())
            return False
        if not read.done():
            return False
        self._read = None
        return read.result() != self.version  # Redis's error, raised: retried as any other

    async def follow(self) -> bool:
        """Read the pointer (once the writes in flight have settled) and write the version it
        names, or a new one if it is gone; True when the version changed."""
        if self._read is not None:  # sent before the writes settled: not used
            await asyncio.gather(self._read, return_exceptions=True)
            self._read = None
        self._last_check = time.monotonic()
        self._check_now = False
        active = await self._writer.active_version()
        if active == self.version:
            return False
        if active is None:
            logger.warning("the read-model pointer is gone (Redis emptied?): rebuilding")
        else:
            logger.info("the served version moved from %d to %d", self.version, active)
        version = await self._writer.ensure_active_version(self._partitions, above=self.version)
        await self.use(version)
        return True

    async def mark_ready_if_caught_up(self) -> None:
        self.ready = await self._writer.mark_ready_if_caught_up(self.version, self._partitions)

    def abandon(self) -> asyncio.Future[int | None] | None:
        """The read in flight, if any, forgotten here (the caller lets it finish)."""
        read, self._read = self._read, None
        return read
