"""Process-level tuning a long-running service applies once it has started.

Python's cyclic garbage collector scans every container object a generation holds. After
startup a service holds hundreds of thousands that live as long as the process (modules,
pydantic schemas, the country tables, clients), and each full collection would walk them
all again, finding nothing to free. `gc.freeze()` moves them out of the collector's
sight (they are still freed by reference counting), and a larger first-generation
threshold lets the short-lived objects of a request die by reference counting before a
collection has to look at them.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

GEN0_THRESHOLD = 5000


@contextmanager
def frozen_startup_heap(*, gen0_threshold: int = GEN0_THRESHOLD) -> Iterator[None]:
    """Around a service's serving life (inside its lifespan, after startup): freeze what
    startup allocated and raise the first-generation threshold; undo both on the way out."""
    before = gc.get_threshold()
    # No collection first: it costs a full scan on every startup (tests start many apps),
    # and what startup left as garbage is only held until `unfreeze`, once.
    gc.freeze()
    gc.set_threshold(gen0_threshold, before[1], before[2])
    logger.debug("froze %d startup objects", gc.get_freeze_count())
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
