"""`python -m services.ingest` (or `chancery ingest`): serve ingest with granian.

Granian, not uvicorn: its HTTP layer is Rust, running beside the Python thread, so reading
requests and writing answers no longer takes turns with validation, Redis and Kafka on the
one interpreter (docs/performance.md has the figures). The app is the same ASGI app the
tests serve with uvicorn in-process; tests/integration/test_ingest_server.py holds this
process to the same answers at the HTTP level (hostile framing, slow bodies, shutdown).

Each worker process builds the app from the environment (`app_from_environment`): one by
default, CHANCERY_INGEST_WORKERS=n for n on the one port. They share no memory: idempotency
claims are atomic in Redis, whichever worker makes them, and each worker has its own
idempotent Kafka producer. Their metrics are summed through a directory of their own
(prometheus_client's multiprocess mode), made here and removed on exit.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from granian import Granian
from granian.constants import Interfaces, Loops, RuntimeModes

from chancery.observability import configure_logging
from chancery.settings import IngestSettings

# metrics.MULTIPROCESS_DIR, named here without importing metrics.py: granian forks its
# workers from this process, and prometheus_client chooses how to keep values (in this
# process, or in the shared directory) once, when it is first imported. So this process
# must not import it before the variable is set.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

APP = "services.ingest.app:app_from_environment"
GRACEFUL_SHUTDOWN_S = 10


def main() -> None:
    settings = IngestSettings()
    configure_logging(settings.log_level, json=settings.log_json, service="ingest")
    with contextlib.ExitStack() as stack:
        if settings.workers > 1:
            metrics_dir = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="chancery-ingest-metrics-")
            )
            os.environ.setdefault(MULTIPROCESS_DIR, metrics_dir)  # before any worker starts
        Granian(
            APP,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.ASGI,
            factory=True,
            workers=settings.workers,
            # Named, not "auto": a missing uvloop fails at start instead of silently
            # serving on asyncio's loop, which is much slower.
            loop=Loops.uvloop,
            # One Rust thread per worker for the HTTP side: with the Python thread, that is
            # what a two-core machine has.
            runtime_mode=RuntimeModes.st,
            websockets=False,
            # The app logs (configure_logging, in each worker); granian's own records go to
            # the same root handler.
            log_enabled=False,
            log_access=False,
            workers_kill_timeout=GRACEFUL_SHUTDOWN_S,
        ).serve()


if __name__ == "__main__":
    main()
