"""Three Kafka nodes on loopback, each a broker and a controller voter: kafka.sh cluster.

    with KafkaCluster.on_free_ports(data_dir=d) as kafka:
        await ensure_topics(kafka.bootstrap_servers, chancery_topics(
            replication_factor=CLUSTER_REPLICATION_FACTOR,
            min_insync_replicas=CLUSTER_MIN_INSYNC_REPLICAS))
        leader = await kafka.leader_of("chancery.events", 0)
        kafka.kill_node(leader)              # SIGKILL, as a crash
        await kafka.wait_for_leader("chancery.events", 0, not_on=leader)
        kafka.start_node(leader)             # same ports, same log
        await kafka.wait_for_isr("chancery.events", size=3)

A node's number is its Kafka node.id (1, 2, 3), which is what the metadata names as a
partition's leader and replicas.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from services.platform.topics import TRANSIENT, _retrying, _started_admin

from .ports import free_ports
from .scripts import ScriptCluster, ScriptServer

DEFAULT_PORTS = (9092, 9094, 9096)
DEFAULT_CONTROLLER_PORTS = (9093, 9095, 9097)
NODES = 3
# What a topic on the cluster needs to survive one node: three copies, two acknowledged.
CLUSTER_REPLICATION_FACTOR = 3
CLUSTER_MIN_INSYNC_REPLICAS = 2


class KafkaClusterNode(ScriptServer):
    """One node of a KafkaCluster. Its ports are in its node.conf (the cluster sets them)."""

    script_name = "kafka"

    def __init__(self, *, node_id: int, port: int, controller_port: int, data_dir: Path) -> None:
        super().__init__(port=port, data_dir=data_dir)
        self.node_id = node_id
        self.controller_port = controller_port

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start_args(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        return f"KafkaClusterNode({self.node_id}, {self.bootstrap_servers})"


@dataclass(frozen=True)
class PartitionState:
    """A partition as the brokers' metadata has it; node ids, -1 for no leader."""

    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class KafkaCluster(ScriptCluster[KafkaClusterNode]):
    """Three combined broker+controller nodes on 127.0.0.1, data in data_dir/node-1..3.

    The controller quorum is the three nodes: any two keep the metadata going, so one node
    may be killed and started again while the others serve. Topics created without a
    replication factor get 3 replicas and min.insync.replicas=2 (the brokers' defaults).
    """

    script_name = "kafka"

    def __init__(
        self,
        *,
        data_dir: Path,
        ports: Sequence[int] = DEFAULT_PORTS,
        controller_ports: Sequence[int] = DEFAULT_CONTROLLER_PORTS,
    ) -> None:
        if len(ports) != NODES or len(controller_ports) != NODES:
            msg = f"a Kafka cluster has {NODES} nodes: give {NODES} ports and controller ports"
            raise ValueError(msg)
        data_dir = data_dir.resolve()
        super().__init__(
            data_dir=data_dir,
            nodes=[
                KafkaClusterNode(
                    node_id=n,
                    port=port,
                    controller_port=controller,
                    data_dir=data_dir / f"node-{n}",
                )
                for n, (port, controller) in enumerate(
                    zip(ports, controller_ports, strict=True), start=1
                )
            ],
        )
        self.ports = tuple(ports)
        self.controller_ports = tuple(controller_ports)

    @classmethod
    def on_free_ports(cls, *, data_dir: Path) -> Self:
        ports = free_ports(2 * NODES)
        return cls(data_dir=data_dir, ports=ports[:NODES], controller_ports=ports[NODES:])

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address, comma-separated (what clients are given)."""
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def _start_args(self) -> list[str]:
        return [
            "--ports",
            ",".join(map(str, self.ports)),
            "--controller-ports",
            ",".join(map(str, self.controller_ports)),
        ]

    def wait_ready(self, timeout_s: float = 180.0, cancel: threading.Event | None = None) -> None:
        """Until every node has started and sees all three brokers (three JVMs on a small
        machine take a while, hence the longer default)."""
        super().wait_ready(timeout_s, cancel)

    # --- what the metadata says -------------------------------------------------------

    async def describe(self, topic: str, *, timeout_s: float = 30.0) -> list[PartitionState]:
        """Every partition of `topic`, by partition number (asks a node that runs)."""
        running = [self.node(n).bootstrap_servers for n in self.running()]
        if not running:
            msg = "no node of the Kafka cluster runs"
            raise RuntimeError(msg)
        admin = await _started_admin(",".join(running), timeout_s)
        try:
            deadline = asyncio.get_running_loop().time() + timeout_s
            (described,) = await _retrying(lambda: admin.describe_topics([topic]), deadline)
        finally:
            await admin.close()
        if described["error_code"] != 0:
            msg = f"cannot describe topic {topic}: error {described['error_code']}"
            raise RuntimeError(msg)
        partitions: list[dict[str, Any]] = described["partitions"]
        return sorted(
            (
                PartitionState(
                    partition=p["partition"],
                    leader=p["leader"],
                    replicas=tuple(p["replicas"]),
                    isr=tuple(p["isr"]),
                )
                for p in partitions
            ),
            key=lambda p: p.partition,
        )

    async def leader_of(self, topic: str, partition: int) -> int:
        """The node id leading `partition` of `topic` (-1 while it has none)."""
        for state in await self.describe(topic):
            if state.partition == partition:
                return state.leader
        msg = f"topic {topic} has no partition {partition}"
        raise ValueError(msg)

    async def wait_for_leader(
        self, topic: str, partition: int, *, not_on: int | None = None, timeout_s: float = 60.0
    ) -> int:
        """Until `partition` has a leader (other than node `not_on`); returns its node id.

        A node killed without warning keeps its leaderships until the controller fences it
        (broker.session.timeout.ms, 9 s), so allow for that and more on a busy machine.
        """

        def led(states: list[PartitionState]) -> bool:
            (state,) = [s for s in states if s.partition == partition]
            return state.leader >= 0 and state.leader != not_on

        states = await self._wait_until(
            topic,
            led,
            timeout_s,
            f"partition {partition} of {topic} to have a leader other than node {not_on}",
        )
        return next(s.leader for s in states if s.partition == partition)

    async def wait_for_isr(self, topic: str, *, size: int, timeout_s: float = 90.0) -> None:
        """Until every partition of `topic` has `size` in-sync replicas (a restarted node
        rejoins the ISR once it has caught up with the leader)."""
        await self._wait_until(
            topic,
            lambda states: all(len(s.isr) >= size for s in states),
            timeout_s,
            f"every partition of {topic} to have {size} in-sync replicas",
        )

    async def _wait_until(
        self,
        topic: str,
        done: Callable[[list[PartitionState]], bool],
        timeout_s: float,
        what: str,
    ) -> list[PartitionState]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        states: list[PartitionState] = []
        while True:
            try:
                states = await self.describe(topic, timeout_s=max(1.0, deadline - loop.time()))
            except TRANSIENT:
                states = []
            if states and done(states):
                return states
            if loop.time() > deadline:
                msg = f"waited {timeout_s}s for {what}; last seen: {states}"
                raise TimeoutError(msg)
            await asyncio.sleep(0.25)

    def __repr__(self) -> str:
        return f"KafkaCluster({self.bootstrap_servers}, data_dir={self.data_dir})"
