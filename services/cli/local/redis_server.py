"""A real Redis server (Debian's redis-server) on loopback: infra/redis/redis.sh."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .scripts import ScriptServer, infra_dir, run_script

DEFAULT_PORT = 6379

Persistence = Literal["aof", "none"]


def install_redis() -> None:
    """apt-get install redis-server when it is missing."""
    run_script(infra_dir() / "redis" / "redis.sh", "install")


class RedisServer(ScriptServer):
    """redis-server on 127.0.0.1:port with its files in data_dir.

    persistence="aof" (make run) keeps data across restarts; "none" (tests) keeps it in
    memory only, so a kill and a start give an empty Redis, as a lost cache node would.
    """

    script_name = "redis"

    def __init__(
        self,
        *,
        port: int = DEFAULT_PORT,
        data_dir: Path,
        persistence: Persistence = "none",
        databases: int = 16,
    ) -> None:
        super().__init__(port=port, data_dir=data_dir)
        self.persistence: Persistence = persistence
        self.databases = databases

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _start_args(self) -> list[str]:
        return [
            "--port",
            str(self.port),
            "--persistence",
            self.persistence,
            "--databases",
            str(self.databases),
        ]

    def __repr__(self) -> str:
        return f"RedisServer({self.url()}, data_dir={self.data_dir})"
