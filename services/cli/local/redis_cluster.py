"""A Redis Cluster of three masters and three replicas on loopback: redis.sh cluster.

    with RedisCluster.on_free_ports(data_dir=d) as cluster:
        master = await cluster.master_of_key("chancery:rm:v1:{p0}:offset")
        cluster.kill_node(master)            # SIGKILL, as a crash
        await cluster.wait_for_master(slot, not_node=master)   # its replica took over
        cluster.start_node(master)           # same port; it rejoins as a replica
        await cluster.wait_for_replica(master)

Nodes are numbered 1 to 6 as their directories (node-1 ... node-6); which are masters is
redis-cli's choice at creation and changes with every failover, so ask, never assume.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import RedisError

from .ports import free_ports
from .redis_server import Persistence
from .scripts import ScriptCluster, ScriptServer

DEFAULT_PORTS = (7000, 7001, 7002, 7003, 7004, 7005)
NODES = 6
SLOTS = 16384
# cluster-node-timeout: a master silent this long is counted failed and its replica is
# promoted (about one to two timeouts after it died: see infra/redis/redis.sh). Short, so a
# failover in a test takes seconds; not so short that a busy machine's pauses fail nodes.
DEFAULT_NODE_TIMEOUT_MS = 3000

T = TypeVar("T")


class RedisClusterNode(ScriptServer):
    """One node of a RedisCluster. Its settings are in its node.conf (the cluster sets them)."""

    script_name = "redis"

    def __init__(self, *, number: int, port: int, data_dir: Path) -> None:
        super().__init__(port=port, data_dir=data_dir)
        self.number = number

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start_args(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        return f"RedisClusterNode({self.number}, {self.address})"


@dataclass(frozen=True)
class ClusterView:
    """The cluster as one node sees it (CLUSTER INFO and CLUSTER NODES), by node number."""

    seen_from: int
    state: str  # cluster_state: "ok" or "fail"
    slots_ok: int
    masters: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    replicas: dict[int, int] = field(default_factory=dict)  # replica -> its master
    failed: frozenset[int] = frozenset()

    def master_of_slot(self, slot: int) -> int | None:
        for master, ranges in self.masters.items():
            if any(start <= slot <= end for start, end in ranges):
                return master
        return None


class RedisCluster(ScriptCluster[RedisClusterNode]):
    """Six redis-servers on 127.0.0.1 in cluster mode, data in data_dir/node-1..6.

    persistence="none" (tests) keeps no data on disk: a node started again comes back
    empty and, if its replica was promoted meanwhile, resyncs from it as a replica. A killed
    master started again *before* its replica is promoted comes back an empty master, and
    its replica then copies the empty data set: in a fault test, wait_for_master first.
    "aof" (a local cluster run by hand) keeps each node's data across restarts.
    """

    script_name = "redis"

    def __init__(
        self,
        *,
        data_dir: Path,
        ports: Sequence[int] = DEFAULT_PORTS,
        bus_ports: Sequence[int] | None = None,
        node_timeout_ms: int = DEFAULT_NODE_TIMEOUT_MS,
        persistence: Persistence = "none",
    ) -> None:
        if len(ports) != NODES or (bus_ports is not None and len(bus_ports) != NODES):
            msg = f"a Redis Cluster here has {NODES} nodes: give {NODES} ports (and bus ports)"
            raise ValueError(msg)
        data_dir = data_dir.resolve()
        super().__init__(
            data_dir=data_dir,
            nodes=[
                RedisClusterNode(number=n, port=port, data_dir=data_dir / f"node-{n}")
                for n, port in enumerate(ports, start=1)
            ],
        )
        self.ports = tuple(ports)
        self.bus_ports = None if bus_ports is None else tuple(bus_ports)
        self.node_timeout_ms = node_timeout_ms
        self.persistence: Persistence = persistence

    @classmethod
    def on_free_ports(
        cls,
        *,
        data_dir: Path,
        node_timeout_ms: int = DEFAULT_NODE_TIMEOUT_MS,
        persistence: Persistence = "none",
    ) -> Self:
        """On free ports, bus ports included (a free port + 10000 need not be free)."""
        ports = free_ports(2 * NODES)
        return cls(
            data_dir=data_dir,
            ports=ports[:NODES],
            bus_ports=ports[NODES:],
            node_timeout_ms=node_timeout_ms,
            persistence=persistence,
        )

    @property
    def node_timeout_s(self) -> float:
        return self.node_timeout_ms / 1000

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every node: what a cluster client is seeded with."""
        return [("127.0.0.1", port) for port in self.ports]

    @property
    def url(self) -> str:
        """redis:// URL of the first node (a cluster client discovers the rest from it)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def _start_args(self) -> list[str]:
        args = [
            "--ports",
            ",".join(map(str, self.ports)),
            "--node-timeout",
            str(self.node_timeout_ms),
            "--persistence",
            self.persistence,
        ]
        if self.bus_ports is not None:
            args += ["--bus-ports", ",".join(map(str, self.bus_ports))]
        return args

    def wait_ready(self, timeout_s: float = 60.0, cancel: threading.Event | None = None) -> None:
        """Until every node sees cluster_state:ok, all 16384 slots served, all six nodes
        known, and every replica linked to its master."""
        super().wait_ready(timeout_s, cancel)

    def number_of(self, address: str) -> int:
        """The node number of `host:port` (as CLUSTER NODES names a node)."""
        port = int(address.split("@", 1)[0].rsplit(":", 1)[1])
        return self.ports.index(port) + 1

    # --- what the nodes say ------------------------------------------------------------

    def _client(self, number: int) -> aioredis.Redis:
        return aioredis.Redis(
            host="127.0.0.1",
            port=self.node(number).port,
            decode_responses=True,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
        )

    async def view(self, number: int | None = None) -> ClusterView:
        """The cluster as node `number` sees it (default: the first node that runs)."""
        if number is None:
            running = self.running()
            if not running:
                msg = "no node of the Redis cluster runs"
                raise RuntimeError(msg)
            number = running[0]
        client = self._client(number)
        try:
            info: dict[str, Any] = await client.cluster("INFO")
            nodes: dict[str, dict[str, Any]] = await client.cluster("NODES")
        finally:
            await client.aclose()
        by_id = {entry["node_id"]: self.number_of(address) for address, entry in nodes.items()}
        masters: dict[int, tuple[tuple[int, int], ...]] = {}
        replicas: dict[int, int] = {}
        failed: set[int] = set()
        for address, entry in nodes.items():
            node = self.number_of(address)
            flags = set(str(entry["flags"]).split(","))
            if flags & {"fail", "fail?"}:
                failed.add(node)
            if "master" in flags:
                masters[node] = tuple(_slot_range(r) for r in entry["slots"])
            elif "slave" in flags and entry["master_id"] in by_id:
                replicas[node] = by_id[entry["master_id"]]
        return ClusterView(
            seen_from=number,
            state=str(info["cluster_state"]),
            slots_ok=int(info["cluster_slots_ok"]),
            masters={m: r for m, r in masters.items() if r},
            replicas=replicas,
            failed=frozenset(failed),
        )

    async def master_of_slot(self, slot: int) -> int:
        """The node number serving `slot` as master (as the first running node sees it)."""
        master = (await self.view()).master_of_slot(slot)
        if master is None:
            msg = f"no master serves slot {slot}"
            raise RuntimeError(msg)
        return master

    async def master_of_key(self, key: str | bytes) -> int:
        """The node number serving `key`'s slot as master (hash tags respected)."""
        return await self.master_of_slot(key_slot(key.encode() if isinstance(key, str) else key))

    async def role(self, number: int) -> str:
        """ "master" or "slave", as node `number` says of itself (ROLE)."""
        client = self._client(number)
        try:
            reply: list[Any] = await client.role()
        finally:
            await client.aclose()
        return str(reply[0])

    async def wait_for_master(
        self, slot: int, *, not_node: int | None = None, timeout_s: float | None = None
    ) -> int:
        """Until every running node sees the cluster ok and `slot` served by one master, a
        running node other than `not_node`; returns that node's number.

        The default bound is the node timeout twice (failure agreement, then the replica's
        election) and a margin for a busy machine.
        """
        timeout_s = timeout_s if timeout_s is not None else 2 * self.node_timeout_s + 20

        async def agreed(views: list[ClusterView]) -> int | None:
            masters = {view.master_of_slot(slot) for view in views}
            if len(masters) != 1 or any(view.state != "ok" for view in views):
                return None
            (master,) = masters
            answering = {view.seen_from for view in views}
            return master if master != not_node and master in answering else None

        return await self._wait_until(
            agreed, timeout_s, f"slot {slot} to be served by a master other than node {not_node}"
        )

    async def wait_for_replica(self, number: int, *, timeout_s: float = 60.0) -> int:
        """Until node `number` is a replica linked to its master (it has synced) and every
        running node sees the cluster ok; returns its master's number."""

        async def linked() -> bool:
            client = self._client(number)
            try:
                replication: dict[str, Any] = await client.info("replication")
            finally:
                await client.aclose()
            return replication.get("role") == "slave" and (
                replication.get("master_link_status") == "up"
            )

        async def its_master(views: list[ClusterView]) -> int | None:
            if any(view.state != "ok" for view in views):
                return None
            masters = {view.replicas.get(number) for view in views}
            master = masters.pop() if len(masters) == 1 else None
            return master if master is not None and await linked() else None

        return await self._wait_until(
            its_master, timeout_s, f"node {number} to be a replica in sync with its master"
        )

    async def wait_ok(self, *, timeout_s: float = 60.0) -> None:
        """Until every running node sees cluster_state:ok with all slots served."""

        async def ok(views: list[ClusterView]) -> bool | None:
            return all(v.state == "ok" and v.slots_ok == SLOTS for v in views) or None

        await self._wait_until(ok, timeout_s, "every running node to see the cluster ok")

    async def _wait_until(
        self,
        check: Callable[[list[ClusterView]], Awaitable[T | None]],
        timeout_s: float,
        what: str,
    ) -> T:
        """Poll the views of the running nodes until `check` gives a result (not None)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        views: list[ClusterView] = []
        while True:
            result: T | None = None
            try:
                views = [await self.view(n) for n in self.running()]
                result = await check(views)
            except (RedisError, OSError):
                pass
            if views and result is not None:
                return result
            if loop.time() > deadline:
                msg = f"waited {timeout_s:.0f}s for {what}; last seen: {views}"
                raise TimeoutError(msg)
            await asyncio.sleep(0.2)

    def __repr__(self) -> str:
        return f"RedisCluster({','.join(n.address for n in self.nodes)}, data_dir={self.data_dir})"


def _slot_range(entry: Sequence[str] | str) -> tuple[int, int]:
    """A CLUSTER NODES slot entry (["0", "5460"], ["42"] or "42") as (first, last)."""
    if isinstance(entry, str):
        return int(entry), int(entry)
    first = int(entry[0])
    return first, int(entry[-1])
