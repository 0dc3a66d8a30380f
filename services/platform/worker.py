"""What a worker process (the projector, the webhook deliverer) runs around its loop: the
signals that stop it, and its status endpoints served by uvicorn in the same event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (call it inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


class _StatusServer(uvicorn.Server):
    """uvicorn inside the worker's loop: the worker, not uvicorn, owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_status(app: ASGIApp, *, host: str, port: int, name: str) -> AsyncIterator[None]:
    """Serve `app` (the worker's health and status) while the block runs; on the way out,
    ask uvicorn to exit and wait until it has."""
    server = _StatusServer(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
    )
    serving = asyncio.create_task(server.serve(), name=name)
    try:
        yield
    finally:
        server.should_exit = True
        await serving
