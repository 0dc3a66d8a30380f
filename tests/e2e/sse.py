"""A small Server-Sent Events reader over httpx streaming, as a browser's EventSource parses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx


@dataclass
class Message:
    id: str | None  # None: the message set no id
    data: str | None  # None: a message with no data (a comment, a ping)
    event: str | None
    comments: list[str]


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    msg = Message(None, None, None, [])
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            msg.data = "\n".join(data) if data else None
            yield msg
            msg, data = Message(None, None, None, []), []
        elif line.startswith(":"):
            msg.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "id":
                msg.id = value
            elif name == "event":
                msg.event = value


class Subscriber:
    """Reads one stream in the background, remembering the last id as EventSource does."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.last_id: str | None = None
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for message in messages(self.response):
                await self._queue.put(message)
        except (httpx.HTTPError, asyncio.CancelledError):
            pass
        finally:
            await self._queue.put(None)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def next(self, within: float = 10.0) -> Message:
        async with asyncio.timeout(within):
            message = await self._queue.get()
        if message is None:
            raise EOFError("the stream ended")
        if message.id is not None:
            self.last_id = message.id
        return message

    async def events(self, count: int, within: float = 20.0) -> list[Message]:
        """The next `count` messages that carry data (pings are read and skipped)."""
        out: list[Message] = []
        async with asyncio.timeout(within):
            while len(out) < count:
                message = await self.next(within)
                if message.data is not None:
                    out.append(message)
        return out

    async def quiet_for(self, seconds: float) -> list[Message]:
        """Data messages that arrive within `seconds` (pings are skipped)."""
        out: list[Message] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                message = await self.next(left)
            except TimeoutError:
                break
            if message.data is not None:
                out.append(message)
        return out
