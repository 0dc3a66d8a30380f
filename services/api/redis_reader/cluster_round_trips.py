"""`RoundTrips` on a Redis Cluster: each batch split by master, every master's share at once.

Every command the readers send touches the keys of one partition (one hash tag, so one slot)
or one key of its own (the version pointer, a version's meta hash). A batch therefore splits
by the master serving each command's slot; each master's share goes in one pipelined round
trip on connections held for that master (`HeldConnections`, as on one server), all masters
at once, and the replies come back in the order of the batch.

A blocking read over several partitions' streams, which a cluster refuses in one XREAD
(its keys are in different slots), becomes one XREAD BLOCK per slot, all at once. The first
to return wakes the others with CLIENT UNBLOCK (each XREAD is sent behind a CLIENT ID, so its
connection is known), and every reply is kept: a wait ends as soon as any partition has an
entry, as one XREAD over every stream does on one server, and nothing read is dropped.

The map of slots to masters is redis-py's (`RedisCluster`'s nodes manager): read at start,
and again when a master answers MOVED, cannot be reached, or says the cluster is down (a
failover). Commands sent where a slot no longer is are sent again where the new map says;
a slot without a master raises redis-py's cluster errors (ClusterDownError and the like),
which the API answers with 503: an answer is whole or not given.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from cachetools import LRUCache
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .held_connections import (
    ROUND_TRIP_TIMEOUT_S,
    Command,
    Commands,
    HeldConnections,
    connection_source,
)
from .round_trips import Script, StreamReply

NodeClient = Callable[[str, int, bool], Redis]
"""Makes the client of one node: (host, port, blocking). Blocking clients are for XREAD
BLOCK (no socket timeout shorter than a block), the others hold read connections."""

ATTEMPTS = 3
"""Sends of a command at most: the first, then after the map of slots was read again."""
TRY_AGAIN_S = 0.05
UNBLOCK_RECHECK_S = 0.05
"""How long a woken XREAD may take to answer before it is woken again (CLIENT UNBLOCK sent
just before its XREAD blocked has nothing to wake)."""
PLANS_KEPT = 4096

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


@functools.lru_cache(maxsize=65_536)
def _slot(key: str | bytes) -> int:
    return key_slot(key.encode() if isinstance(key, str) else key)


def _key_of(command: Command) -> str | bytes | None:
    """The first key of a command the readers send (None: a command with no key)."""
    name = command[0]
    if name in ("EVALSHA", "EVAL"):
        return command[3] if int(command[2]) > 0 else None  # type: ignore[return-value]
    if name in ("XINFO", "ECHO", "SCRIPT", "CLIENT", "PING"):
        return command[2] if name == "XINFO" else None  # type: ignore[return-value]
    return command[1]  # type: ignore[return-value]


Plan = list[tuple[ClusterNode, list[int]]]
"""Per master, the indexes of the batch's commands it serves."""


class ClusterRoundTrips:
    """`RoundTrips` on a Redis Cluster (see the module doc)."""

    def __init__(
        self, cluster: RedisCluster, node_client: NodeClient, *, scripts: Sequence[Script] = ()
    ) -> None:
        """`cluster`: redis-py's client, for the map of slots to masters only; `node_client`
        makes the clients of each master, on which the round trips go."""
        self._cluster = cluster
        self._node_client = node_client
        self._scripts = tuple(scripts)
        self._held: dict[str, tuple[Redis, HeldConnections]] = {}
        self._blocking: dict[str, Redis] = {}
        self._epoch = 0  # counts the reads of the map of slots
        self._refreshing: asyncio.Task[None] | None = None
        self._plans: LRUCache[tuple[Hashable, int], tuple[Plan, Commands]] = LRUCache(PLANS_KEPT)

    # --- RoundTrips --------------------------------------------------------------------------

    async def load_scripts(self) -> None:
        try:
            await self._cluster.initialize()
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster unavailable: {exc}") from exc
        await asyncio.gather(*(self._load_scripts(node) for node in self._masters()))

    async def send(self, commands: Commands, *, raise_on_error: bool = True) -> list[Any]:
        """As on one server; a reply saying the cluster cannot answer (a slot without a
        master) is raised even with `raise_on_error` False: it is no answer to a command."""
        replies = await self._send(commands)
        failed = (ResponseError, ClusterError) if raise_on_error else (ClusterError,)
        error = next((r for r in replies if isinstance(r, failed)), None)
        if error is not None:
            raise error
        return replies

    async def send_packed_once(self, key: Hashable, build: Callable[[], Commands]) -> list[Any]:
        """As `send`, each master's share packed once per `key` and map of slots; anything
        but a clean reply from every master takes the careful way (`send`)."""
        epoch = self._epoch
        kept = self._plans.get((key, epoch))
        if kept is None:
            commands = build()
            try:
                plan = self._plan(commands)
            except RedisClusterException:
                return await self.send(commands)
            kept = self._plans[(key, epoch)] = (plan, commands)
        plan, commands = kept
        results = await asyncio.gather(
            *(
                self._connections(node).send_packed_once(
                    (key, epoch, node.name), _share_of(commands, at)
                )
                for node, at in plan
            ),
            return_exceptions=True,
        )
        replies: list[Any] = [None] * len(commands)
        for (_, at), result in zip(plan, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                return await self.send(commands)
            for i, reply in zip(at, result, strict=True):
                replies[i] = reply
        return replies

    async def read_streams(
        self, streams: Mapping[str, str], *, count: int, block_ms: int
    ) -> StreamReply:
        for attempt in range(ATTEMPTS):
            epoch = self._epoch
            try:
                return await self._read_streams(streams, count=count, block_ms=block_ms)
            except (*_UNREACHABLE, MovedError, ClusterDownError, RedisClusterException) as exc:
                if attempt + 1 == ATTEMPTS or isinstance(exc, ClusterDownError):
                    await self._refresh(epoch, wait=False)
                    raise _unavailable(exc) from exc
                await self._refresh(epoch)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close the clients of every master (the cluster client is its owner's to close)."""
        clients = [client for client, _ in self._held.values()] + list(self._blocking.values())
        self._held.clear()
        self._blocking.clear()
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)

    # --- batches ----------------------------------------------------------------------------

    async def _send(self, commands: Commands) -> list[Any]:
        """The replies to `commands` in order; each command sent again (at most ATTEMPTS
        times in all) while its master cannot be reached or says its slot moved."""
        replies: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        for attempt in range(ATTEMPTS):
            last = attempt + 1 == ATTEMPTS
            epoch = self._epoch
            try:
                plan = self._plan(tuple(commands[i] for i in todo))
            except RedisClusterException as exc:  # a slot the map has no master for
                if last:
                    raise _unavailable(exc) from exc
                await self._refresh(epoch)
                continue
            results = await asyncio.gather(
                *(
                    self._connections(node).send(
                        tuple(commands[todo[i]] for i in at), raise_on_error=False
                    )
                    for node, at in plan
                ),
                return_exceptions=True,
            )
            again: list[int] = []
            stale = False
            for (node, at), result in zip(plan, results, strict=True):
                if isinstance(result, BaseException):
                    if not isinstance(result, _UNREACHABLE):
                        raise result
                    if last:
                        await self._refresh(epoch, wait=False)
                        raise _unavailable(result) from result
                    stale = True
                    again += (todo[i] for i in at)
                    continue
                missing_scripts = False
                for i, reply in zip(at, result, strict=True):
                    index = todo[i]
                    replies[index] = reply
                    if isinstance(reply, ClusterDownError):
                        stale = True  # kept: a failover is under way (503)
                    elif isinstance(reply, AskError) and not isinstance(reply, MovedError):
                        replies[index] = await self._asking(reply, commands[index])
                    elif isinstance(reply, (MovedError, TryAgainError)) and not last:
                        stale = stale or isinstance(reply, MovedError)
                        again.append(index)
                    elif isinstance(reply, NoScriptError) and not last:
                        missing_scripts = True  # a replica promoted since the scripts loaded
                        again.append(index)
                if missing_scripts:
                    await self._load_scripts(node)
            if stale:
                await self._refresh(epoch, wait=bool(again))
            if not again:
                break
            if not stale:
                await asyncio.sleep(TRY_AGAIN_S)
            todo = sorted(again)
        for i, reply in enumerate(replies):
            if isinstance(reply, (MovedError, TryAgainError)):
                replies[i] = ClusterError(f"the cluster is moving slots ({reply}); retry")
        return replies

    def _plan(self, commands: Commands) -> Plan:
        """Per master, the indexes of the commands it serves (by the slot of their first
        key); a command without a key goes with the first master named."""
        manager = self._cluster.nodes_manager
        nodes: dict[str, tuple[ClusterNode, list[int]]] = {}
        keyless: list[int] = []
        for i, command in enumerate(commands):
            key = _key_of(command)
            if key is None:
                keyless.append(i)
                continue
            node = manager.get_node_from_slot(_slot(key))
            entry = nodes.get(node.name)
            if entry is None:
                entry = nodes[node.name] = (node, [])
            entry[1].append(i)
        if keyless:
            if not nodes:
                master = self._masters()[0]
                nodes[master.name] = (master, [])
            next(iter(nodes.values()))[1].extend(keyless)
            for _, at in nodes.values():
                at.sort()
        return list(nodes.values())

    async def _asking(self, redirect: AskError, command: Command) -> Any:
        """A command for a slot being migrated, where the ASK redirection says, once."""
        node = self._node_at(redirect.host, int(redirect.port))
        _, reply = await self._connections(node).send((("ASKING",), command), raise_on_error=False)
        return reply

    # --- blocking reads ---------------------------------------------------------------------

    async def _read_streams(
        self, streams: Mapping[str, str], *, count: int, block_ms: int
    ) -> StreamReply:
        manager = self._cluster.nodes_manager
        by_slot: dict[int, dict[str, str]] = {}
        for key, after in streams.items():
            by_slot.setdefault(_slot(key), {})[key] = after
        reads = [(manager.get_node_from_slot(slot), group) for slot, group in by_slot.items()]
        if len(reads) == 1:
            ((node, group),) = reads
            return await self._xread(node, group, count, block_ms, None)
        loop = asyncio.get_running_loop()
        ids: list[asyncio.Future[int]] = [loop.create_future() for _ in reads]
        tasks = [
            asyncio.create_task(self._xread(node, group, count, block_ms, client_id))
            for (node, group), client_id in zip(reads, ids, strict=True)
        ]
        try:
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            while pending:
                await self._unblock(
                    (node, client_id)
                    for (node, _), client_id, task in zip(reads, ids, tasks, strict=True)
                    if task in pending
                )
                _, pending = await asyncio.wait(pending, timeout=UNBLOCK_RECHECK_S)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        merged: StreamReply = []
        for task in tasks:
            merged += task.result()  # the first failure, if any, raises here
        return merged

    async def _xread(
        self,
        node: ClusterNode,
        streams: Mapping[str, str],
        count: int,
        block_ms: int,
        client_id: asyncio.Future[int] | None,
    ) -> StreamReply:
        """XREAD BLOCK on one master, for streams of one slot; `client_id` is given the
        connection's CLIENT ID first, so that another task can wake it."""
        pool = self._blocking_client(node).connection_pool
        names, after = list(streams), list(streams.values())
        command: Command = ("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", *names, *after)
        async with asyncio.timeout(block_ms / 1000 + ROUND_TRIP_TIMEOUT_S):
            conn = await connection_source(pool)()
            try:
                if client_id is None:
                    await conn.send_packed_command(conn.pack_command(*command))
                else:
                    await conn.send_packed_command(conn.pack_commands([("CLIENT", "ID"), command]))
                    client_id.set_result(int(await conn.read_response()))
                raw = await conn.read_response()
            finally:
                await pool.release(conn)
        return _stream_reply(raw)

    async def _unblock(self, waiting: Iterable[tuple[ClusterNode, asyncio.Future[int]]]) -> None:
        """CLIENT UNBLOCK each blocked XREAD whose connection is known (it then answers as
        if its block had ended, or with what it read meanwhile)."""
        sends = [
            self._connections(node).send(
                (("CLIENT", "UNBLOCK", client_id.result()),), raise_on_error=False
            )
            for node, client_id in waiting
            if client_id.done() and not client_id.cancelled() and client_id.exception() is None
        ]
        await asyncio.gather(*sends, return_exceptions=True)

    # --- masters, their clients and the map of slots -----------------------------------------

    def _masters(self) -> list[ClusterNode]:
        return list(self._cluster.nodes_manager.get_nodes_by_server_type("primary"))

    def _node_at(self, host: str, port: int) -> ClusterNode:
        node = self._cluster.nodes_manager.get_node(host, port)
        return node if node is not None else ClusterNode(host, port)

    def _connections(self, node: ClusterNode) -> HeldConnections:
        held = self._held.get(node.name)
        if held is None:
            client = self._node_client(node.host, int(node.port), False)
            held = self._held[node.name] = (client, HeldConnections(client))
        return held[1]

    def _blocking_client(self, node: ClusterNode) -> Redis:
        client = self._blocking.get(node.name)
        if client is None:
            client = self._blocking[node.name] = self._node_client(node.host, int(node.port), True)
        return client

    async def _load_scripts(self, node: ClusterNode) -> None:
        if self._scripts:
            await self._connections(node).send(
                tuple(("SCRIPT", "LOAD", s.text) for s in self._scripts)
            )

    async def _refresh(self, seen_epoch: int, *, wait: bool = True) -> None:
        """Read the map of slots again, unless it was read since `seen_epoch`; concurrent
        callers share one read. `wait=False`: start it and go on."""
        if self._epoch != seen_epoch:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._read_map(), name="cluster-slots")
        if wait:
            with contextlib.suppress(*_UNREACHABLE, RedisClusterException):
                await asyncio.shield(self._refreshing)

    async def _read_map(self) -> None:
        try:
            await self._cluster.nodes_manager.initialize()
        except (*_UNREACHABLE, RedisClusterException):
            return  # no node answers: the next failure tries again
        self._epoch += 1


def _share_of(commands: Commands, at: list[int]) -> Callable[[], Commands]:
    """The commands of one master's share, built when first packed."""
    return lambda: tuple(commands[i] for i in at)


def _unavailable(exc: BaseException) -> BaseException:
    """What a failure of the cluster is to the API: Redis unavailable (answered 503)."""
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, ClusterError)):
        return exc
    if isinstance(exc, RedisClusterException):
        return ClusterError(f"Redis Cluster unavailable: {exc}")
    return RedisConnectionError(f"Redis Cluster unavailable: {exc!r}")


def _stream_reply(raw: Any) -> StreamReply:
    """XREAD's reply as parsed from RESP (per stream: name, entries of id and a flat list
    of fields and values) in the shape redis-py's `xread` gives (fields as a dict)."""
    if not raw:
        return []
    items = raw.items() if isinstance(raw, dict) else raw
    return [
        (name, [(entry_id, _fields(fields)) for entry_id, fields in entries])
        for name, entries in items
    ]


def _fields(flat: Any) -> dict[bytes, bytes]:
    if isinstance(flat, dict):
        return dict(flat)
    return dict(zip(flat[::2], flat[1::2], strict=True))
