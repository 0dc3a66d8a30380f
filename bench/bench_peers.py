"""The projector beside stream processors a user would otherwise pick, on the same log.

The log is the projector benchmark's (bench/bench_projector.py): N `diplomacy.event.coded`
events (N = 200,000; 20,000 with quick=True) from the real rows of one GDELT export, produced
zstd-compressed as ingest writes them to a fresh 6-partition topic on the run's broker. On
that one topic, one after the other:

- ours: `python -m services.projector` with its default settings replays it into an empty
  Redis database, every read model with its exactly-once effect (`projector_replay`, as in
  the projector benchmark); its rate counts from its first applied batch to its last.
- Quix Streams (bench/peers/quix_app.py, the `quixstreams` package): each pair's event count
  and quad-class counts in its RocksDB state store, with the library's default at-least-once
  guarantee; then again with `processing_guarantee="exactly-once"`, as context.
- Kafka Streams (bench/peers/kafka-streams, Java, from Maven Central at the broker's Kafka
  version): the same aggregation, the high anchor.

What makes it fair:

- The same events on the same topic of the same broker, in the same run; each peer from the
  earliest offset with a fresh consumer group (application id) and a fresh state directory,
  so it reads the whole log and recovers nothing.
- Each peer commits as its defaults do (Quix: every 5 s; Kafka Streams: every 30 s at least
  once), keeps its default changelog topic, and runs with its library's other defaults (the
  JVM's too: its warm-up counts, as the projector's start does).
- The peers decode the JSON the way their users would, and no more: Quix through its topic's
  default JSON deserializer (orjson), Kafka Streams through Jackson into the one field it
  needs. Neither validates the event against the contract, as chancery's `decode_event` (in
  the projector) does; that is in the peers' favour. The quad class of each event comes, in
  both, from the CAMEO table chancery ships (chancery/contract/data/cameo_gdelt.tsv), read
  with the language's own tools: the Quix environment cannot import chancery (see
  bench/peers/quix-env/pyproject.toml). The pair is the record key, which ingest sets to the
  two actors of a coded event, so neither peer repartitions.
- A peer's rate counts from its first processed event to its last (N - 1 events over that
  time), timed inside the peer; its CPU per event is its process's CPU time (every thread,
  from /proc/self/stat) over the same span. Both peers keep their state in a write cache
  between commits, so their last commit (one value per pair, about 120) falls after that
  span; the projector's last write is inside its own. So each peer's note also gives its
  rate and CPU to its last commit done (Quix: `run` returned; Kafka Streams: the span plus
  its `close()`). Ours: the projector process's CPU (from /proc) plus redis-server's, since a
  peer's state store runs inside the peer.
- The work is checked: each peer writes out its state store's contents after the run, and
  they must equal, pair by pair, the counts computed directly from the same events with
  chancery's own `decode_event` and `relation_effects` (the projector's fold). A peer whose
  store differs fails the benchmark.

The machine is shared and noisy: the rates move with the load, the CPU per event much less.
Target: ours at least twice Quix Streams' rate at its default guarantee.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from chancery.contract import decode_event
from chancery.domain import relation_effects

from .bench_projector import PARTITIONS, gdelt_log, produce, projector_replay
from .framework import BenchEnv, Row
from .peers.environment import (
    CAMEO_TABLE,
    QUIX_APP,
    STREAMS_MAIN,
    kafka_streams_jars,
    quix_python,
)

NAME = "peers"
TARGET_RATIO = 2.0
PEER_TIMEOUT_S = 600
REDIS_DB = 8  # its own: the other benchmarks use 3 to 7, 11 and 12

Counts = dict[str, list[int]]  # pair -> [events, quad 1, quad 2, quad 3, quad 4]


@dataclass(frozen=True)
class PeerRun:
    name: str
    rate: float  # events/s, first to last processed
    cpu_us: float  # the peer process's CPU time per event over the same span
    committed_rate: float  # events/s, first processed to its last commit done
    committed_cpu_us: float  # CPU time per event over that span
    wall_s: float  # the whole process, start to exit

    def note(self) -> str:
        return (
            f"{self.name} to its last commit: {self.committed_rate:,.0f} events/s, "
            f"{self.committed_cpu_us:.1f} us CPU per event"
        )


def direct_counts(records: list[tuple[bytes, bytes]]) -> Counts:
    """What each peer's store must hold: the projector's own fold, per pair."""
    out: Counts = {}
    for _, value in records:
        for pair, effect in relation_effects(decode_event(value)).items():
            counts = out.setdefault(pair.key, [0, 0, 0, 0, 0])
            counts[0] += effect.bucket.count
            for i, quads in enumerate(effect.bucket.quads, start=1):
                counts[i] += quads
    return out


def check_state(name: str, state: Counts, expected: Counts) -> None:
    if state == expected:
        return
    wrong = sorted(p for p in state.keys() | expected.keys() if state.get(p) != expected.get(p))
    shown = ", ".join(f"{p}: {state.get(p)} not {expected.get(p)}" for p in wrong[:5])
    raise RuntimeError(
        f"{name}: its store differs from the direct count on {len(wrong)} pairs: {shown}"
    )


def run_peer(
    env: BenchEnv, name: str, command: list[str], out: Path, count: int, expected: Counts
) -> PeerRun:
    """Run a peer process to its end; its figures from the file it writes, its store checked."""
    log_path = env.workdir / f"{out.stem}.log"
    started = time.perf_counter()
    with log_path.open("wb") as log:
        done = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, timeout=PEER_TIMEOUT_S, check=False
        )
    wall = time.perf_counter() - started
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"{name} exited {done.returncode}; see {log_path}")
    result = json.loads(out.read_text())
    if result["events"] != count:
        raise RuntimeError(f"{name} processed {result['events']} of {count} events")
    check_state(name, result["state"], expected)
    events = count - 1
    return PeerRun(
        name,
        events / (result["last"] - result["first"]),
        (result["cpu_last"] - result["cpu_first"]) / events * 1e6,
        events / (result["committed"] - result["first"]),
        (result["cpu_committed"] - result["cpu_first"]) / events * 1e6,
        wall,
    )


def quix(env: BenchEnv, topic: str, count: int, expected: Counts, guarantee: str) -> PeerRun:
    run_id = f"quix-{guarantee}-{uuid.uuid4().hex[:8]}"
    out = env.workdir / f"{run_id}.json"
    command = [
        str(quix_python()),
        str(QUIX_APP),
        f"--bootstrap={env.kafka_bootstrap}",
        f"--topic={topic}",
        f"--count={count}",
        f"--cameo={CAMEO_TABLE}",
        f"--state-dir={env.workdir / run_id}",
        f"--group={run_id}",
        f"--guarantee={guarantee}",
        f"--out={out}",
    ]
    return run_peer(env, f"Quix Streams ({guarantee})", command, out, count, expected)


def kafka_streams(env: BenchEnv, topic: str, count: int, expected: Counts) -> PeerRun:
    run_id = f"kafka-streams-{uuid.uuid4().hex[:8]}"
    out = env.workdir / f"{run_id}.json"
    command = [
        "java",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        f"{kafka_streams_jars()}/*",
        STREAMS_MAIN,
        *("--bootstrap", env.kafka_bootstrap),
        *("--topic", topic),
        *("--count", str(count)),
        *("--cameo", str(CAMEO_TABLE)),
        *("--state-dir", str(env.workdir / run_id)),
        *("--application-id", run_id),
        *("--clock-ticks", str(os.sysconf("SC_CLK_TCK"))),
        *("--out", str(out)),
    ]
    return run_peer(env, "Kafka Streams", command, out, count, expected)


def library_versions() -> str:
    jars = kafka_streams_jars()
    streams = next((p.stem for p in jars.glob("kafka-streams-[0-9]*.jar")), "kafka-streams ?")
    probe = "import importlib.metadata as m; print(m.version('quixstreams'))"
    quix_version = subprocess.run(
        [str(quix_python()), "-c", probe], check=True, capture_output=True, text=True
    ).stdout.strip()
    return f"quixstreams {quix_version}, {streams}"


async def _run(env: BenchEnv, quick: bool) -> list[Row]:
    count = 20_000 if quick else 200_000
    # Made before the clock matters: the environments, the log and the expected counts.
    versions = library_versions()
    records = gdelt_log(count)
    expected = direct_counts(records)
    topic = env.new_topic(NAME, partitions=PARTITIONS)
    await produce(env.kafka_bootstrap, topic, records)
    del records
    replay = await projector_replay(env, topic, count, db=REDIS_DB)
    at_least_once = quix(env, topic, count, expected, "at-least-once")
    exactly_once = quix(env, topic, count, expected, "exactly-once")
    anchor = kafka_streams(env, topic, count, expected)
    ours_cpu = replay.cpu_us + (replay.redis_cpu_us or 0.0)
    cpu_split = (
        f"ours: projector {replay.cpu_us:.1f} + redis-server {replay.redis_cpu_us:.1f} us"
        if replay.redis_cpu_us is not None
        else "ours: the projector alone (a Redis not started by the bench)"
    )
    walls = ", ".join(f"{p.name} {p.wall_s:.1f} s" for p in (at_least_once, exactly_once, anchor))
    rows = [
        Row(
            NAME,
            "replay rate vs Quix Streams",
            "events/s",
            at_least_once.rate,
            replay.rate,
            f"ratio >= {TARGET_RATIO:.2f}",
            replay.rate >= TARGET_RATIO * at_least_once.rate,
            f"{count:,} events on one topic; baseline: Quix Streams at its default guarantee "
            f"(at-least-once), ours: the projector; {versions}; whole processes: {walls}; "
            f"{at_least_once.note()}",
        ),
    ]
    for peer, what in (
        (at_least_once, "Quix Streams"),
        (exactly_once, "Quix Streams exactly-once"),
        (anchor, "Kafka Streams"),
    ):
        if peer is not at_least_once:
            rows.append(
                Row(
                    NAME,
                    f"replay rate vs {what}",
                    "events/s",
                    peer.rate,
                    replay.rate,
                    "context",
                    note=peer.note(),
                )
            )
        rows.append(
            Row(
                NAME,
                f"CPU per event vs {what}",
                "us",
                peer.cpu_us,
                ours_cpu,
                "context",
                note=cpu_split if peer is at_least_once else "",
            )
        )
    return rows


def run(env: BenchEnv, quick: bool = False) -> list[Row]:
    return asyncio.run(_run(env, quick))
