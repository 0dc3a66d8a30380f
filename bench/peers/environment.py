"""What the peers run on, made once: the Quix Streams environment and the Kafka Streams jars.

- Quix Streams: `bench/peers/quix-env` is a uv project of its own (its lock file is in the
  repository), synced into `bench/peers/quix-env/.venv` with `uv sync --frozen`.
- Kafka Streams: `bench/peers/kafka-streams` is built with Maven, against the broker's Kafka
  version (`infra/kafka/kafka.sh version`), into the cache beside the broker's jars
  (`$CHANCERY_CACHE_DIR`, default `~/.cache/chancery`), one folder per digest of its pom, its
  sources and that version; Maven keeps what it downloads in `~/.m2`. Nothing lands in the
  repository.

`python -m bench.peers.environment` makes both and prints where they are.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
QUIX_PROJECT = HERE / "quix-env"
QUIX_APP = HERE / "quix_app.py"
STREAMS_PROJECT = HERE / "kafka-streams"
STREAMS_MAIN = "org.chancery.bench.PairCounts"
KAFKA_SCRIPT = ROOT / "infra" / "kafka" / "kafka.sh"
CAMEO_TABLE = ROOT / "chancery" / "contract" / "data" / "cameo_gdelt.tsv"
COMPLETE = ".complete"


def quix_python() -> Path:
    """The Python of the Quix Streams environment, synced from its lock file."""
    found = shutil.which("uv")
    uv = [found] if found else [os.environ.get("PYTHON", "python3"), "-m", "uv"]  # as the Makefile
    # Never the environment of a caller's project: only this project's own .venv.
    env = {
        k: v for k, v in os.environ.items() if k not in {"UV_PROJECT_ENVIRONMENT", "VIRTUAL_ENV"}
    }
    subprocess.run(
        [*uv, "sync", "--frozen", "--quiet", "--project", str(QUIX_PROJECT)],
        check=True,
        env={**env, "UV_PYTHON_DOWNLOADS": "never"},
    )
    return QUIX_PROJECT / ".venv" / "bin" / "python"


def kafka_version() -> str:
    out = subprocess.run([str(KAFKA_SCRIPT), "version"], check=True, capture_output=True, text=True)
    version = out.stdout.strip()
    if not version:
        raise RuntimeError(f"{KAFKA_SCRIPT} version printed nothing")
    return version


def _cache_root() -> Path:
    if configured := os.environ.get("CHANCERY_CACHE_DIR"):
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "chancery"


def _streams_digest(version: str) -> str:
    digest = hashlib.sha256(version.encode())
    for path in sorted(p for p in STREAMS_PROJECT.rglob("*") if p.is_file()):
        if "target" in path.relative_to(STREAMS_PROJECT).parts:
            continue
        digest.update(str(path.relative_to(STREAMS_PROJECT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def kafka_streams_jars() -> Path:
    """The folder of the Kafka Streams peer's jar and its runtime jars (`java -cp 'DIR/*'`)."""
    version = kafka_version()
    root = _cache_root()
    jars = root / f"kafka-streams-peer-{version}-{_streams_digest(version)}"
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".kafka-streams-peer.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time per cache
        if (jars / COMPLETE).is_file():
            return jars
        if shutil.which("mvn") is None:
            raise RuntimeError("mvn not found (Maven builds the Kafka Streams peer)")
        with tempfile.TemporaryDirectory(dir=root, prefix="kafka-streams-peer.tmp.") as tmp:
            build = Path(tmp) / "build"
            built = subprocess.run(
                [
                    "mvn",
                    "-B",
                    "-q",
                    "-f",
                    str(STREAMS_PROJECT / "pom.xml"),
                    "package",
                    f"-Dkafka.version={version}",
                    f"-Dbuild.dir={build}",
                    f"-Djars.dir={build / 'jars'}",
                    "-Dstyle.color=never",
                    *os.environ.get("CHANCERY_MVN_ARGS", "").split(),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if built.returncode != 0:
                raise RuntimeError(
                    f"mvn failed to build the Kafka Streams peer:\n{built.stdout}{built.stderr}"
                )
            (build / "jars" / COMPLETE).write_text(f"kafka {version}\n")
            shutil.rmtree(jars, ignore_errors=True)
            (build / "jars").rename(jars)
    return jars


def main() -> int:
    print(f"quix streams: {quix_python()}")
    print(f"kafka streams: {kafka_streams_jars()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
