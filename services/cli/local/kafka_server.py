"""A real Kafka broker (KRaft, broker+controller in one JVM) on loopback: infra/kafka/kafka.sh."""

from __future__ import annotations

from pathlib import Path

from .scripts import ScriptServer, infra_dir, run_script

DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093


def fetch_kafka_jars() -> Path:
    """Resolve the broker's jars from Maven Central into the user cache (once)."""
    return Path(run_script(infra_dir() / "kafka" / "kafka.sh", "fetch").strip())


class KafkaServer(ScriptServer):
    """One broker on 127.0.0.1:port, its controller on controller_port, its log in data_dir.

    The data dir is formatted on the first start; later starts reuse it, so a stop and a
    start keep every topic and record.
    """

    script_name = "kafka"

    def __init__(
        self,
        *,
        port: int = DEFAULT_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        data_dir: Path,
    ) -> None:
        super().__init__(port=port, data_dir=data_dir)
        self.controller_port = controller_port

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def server_log(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    def _start_args(self) -> list[str]:
        return ["--port", str(self.port), "--controller-port", str(self.controller_port)]

    def __repr__(self) -> str:
        return f"KafkaServer({self.bootstrap_servers}, data_dir={self.data_dir})"
