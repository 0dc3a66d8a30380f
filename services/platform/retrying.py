"""How our clients wait between attempts: moved to `chancery.client.retrying`, which the
Python client, the `chancery` command and the services share. Kept so that what imports it
from here (ingest's publisher) keeps working; new code imports from the client."""

from chancery.client.retrying import (
    ServerDelayOrBackoff,
    StopBeforeWaitingLongerThan,
    TryAgainLater,
    failure_of,
)

__all__ = ["ServerDelayOrBackoff", "StopBeforeWaitingLongerThan", "TryAgainLater", "failure_of"]
