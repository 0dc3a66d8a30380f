"""Read-your-writes: a read waits until the projector has applied the client's position.

Ingest answers every write with a position token. A client passes it back as the query
parameter `min_position` or the header `Chancery-Min-Position` (both: both must hold). The
read waits, at most `CHANCERY_MIN_POSITION_WAIT_S` (5 s), until every partition in the token
has been applied that far, then reads: its answer includes the write.

If the wait runs out the answer is 504 Gateway Timeout, with the position reached so far and
Retry-After, never a stale 200: a client that asked to read its write would otherwise have
to inspect a flag on every answer to notice it did not get it, and most would not. The
write itself is safe in the log; retrying the same request is the remedy.
"""

from __future__ import annotations

import time

from chancery.positions import Position

from . import params
from .context import ApiContext
from .reader import PositionTimeoutError, Snapshot
from .representation import MIN_POSITION_HEADER


async def reach(
    ctx: ApiContext, query_token: str | None, header_token: str | None
) -> Snapshot | None:
    """Wait for the position(s) given; None when none was given."""
    tokens = [
        (token, field)
        for token, field in ((query_token, "min_position"), (header_token, MIN_POSITION_HEADER))
        if token
    ]
    if not tokens:
        return None
    snapshot = await ctx.reader.snapshot()
    wanted = Position(ctx.reader.topic)
    for token, field in tokens:
        wanted = wanted.merge(
            params.position(
                token, topic=ctx.reader.topic, partitions=snapshot.partitions, field=field
            )
        )
    if snapshot.covers(wanted):
        return snapshot
    started = time.perf_counter()
    try:
        reached = await ctx.reader.wait_for(
            wanted, ctx.settings.min_position_wait_s, known=snapshot
        )
    except PositionTimeoutError:
        ctx.metrics.min_position_timeouts.inc()
        raise
    finally:
        ctx.metrics.min_position_wait.observe(time.perf_counter() - started)
    return reached
