"""How many live streams each client holds open in this process, against its limit."""

from __future__ import annotations


class StreamSlots:
    """Open streams per client in this process (the limit is per API instance)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def take(self, client: str) -> bool:
        if self._open.get(client, 0) >= self.limit:
            return False
        self._open[client] = self._open.get(client, 0) + 1
        return True

    def give_back(self, client: str) -> None:
        left = self._open.get(client, 0) - 1
        if left > 0:
            self._open[client] = left
        else:
            self._open.pop(client, None)

    @property
    def total(self) -> int:
        return sum(self._open.values())
