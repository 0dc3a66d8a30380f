"""Typed settings for every Chancery process, read from `CHANCERY_*` environment variables.

One class per service; the connection settings they share live in `CommonSettings`, so a
variable means the same thing in every process. Each setting answers to exactly one
variable: `CHANCERY_` and its field name, or the one name its `validation_alias` gives
(`CHANCERY_PROJECTOR_BATCH_EVENTS` for the projector's `max_batch_events`, never ingest's
`CHANCERY_MAX_BATCH_EVENTS`). A `.env` file in the working directory is read too; a variable
in the environment wins over it. `.env.example` lists every variable, and tests check that
it and docker-compose.yml stay in step with these classes.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

Port = Annotated[int, Field(ge=1, le=65535)]

ENV_FILE = ".env"


def _by_variable_only(source: PydanticBaseSettingsSource) -> PydanticBaseSettingsSource:
    """The source, reading an aliased field from its alias alone.

    `validate_by_name` lets code and tests build settings by field name
    (`ProjectorSettings(max_batch_events=200)`), but pydantic-settings then also reads the
    environment by prefix + field name, so the projector's `max_batch_events` would answer
    to ingest's CHANCERY_MAX_BATCH_EVENTS and `host` to CHANCERY_HOST. The environment and
    `.env` sources get the config without it.
    """
    source.config = {**source.config, "validate_by_name": False}
    return source


class ChancerySettings(BaseSettings):
    """The base of every settings class: `CHANCERY_*` variables, then `.env`, then defaults."""

    model_config = SettingsConfigDict(
        env_prefix="CHANCERY_",
        env_file=ENV_FILE,
        extra="ignore",
        frozen=True,
        validate_by_name=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _by_variable_only(env_settings),
            _by_variable_only(dotenv_settings),
            file_secret_settings,
        )


class CommonSettings(ChancerySettings):
    """Where the log and the read models are, shared by all services."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "chancery.events"
    dead_letter_topic: str = "chancery.events.dlq"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Whether CHANCERY_REDIS_URL names a node of a Redis Cluster (redis-py's RedisCluster
    # discovers the other nodes from it) rather than a single server. Checked at start: a
    # mismatch either way is refused, naming it.
    redis_cluster: bool = False
    log_level: str = "INFO"
    log_json: bool = True
    # The event log's partition count. Unset, a new topic gets 6 and an existing topic is
    # used with whatever count it has; set, a new topic gets it and an existing topic with
    # another count is refused at start (a key's partition depends on the count).
    partitions: int | None = Field(default=None, ge=1)
    # Copies of each record, and how many of them must have it before it is acknowledged:
    # 1 and 1 on one broker; 3 and 2 on a three-node cluster (one node may fail). A new
    # topic gets these; an existing topic with fewer is refused at start.
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)

    @field_validator("partitions", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """CHANCERY_PARTITIONS= (as in .env.example) means unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _min_insync_within_replicas(self) -> CommonSettings:
        if self.min_insync_replicas > self.replication_factor:
            msg = (
                f"min_insync_replicas={self.min_insync_replicas} is more than "
                f"replication_factor={self.replication_factor}: no write could ever succeed"
            )
            raise ValueError(msg)
        return self


class AuthSettings(ChancerySettings):
    """Credentials for the HTTP services. Keys are stored hashed (see chancery.auth)."""

    auth_enabled: bool = True
    # A JSON file of hashed API keys, as written by `chancery keys create`.
    api_keys_file: Path = Path(".chancery/api-keys.json")
    # HMAC secret for HS256 JWTs; none means JWTs are refused.
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "chancery"
    jwt_audience: str = "chancery"


class WebhookTargetSettings(ChancerySettings):
    """Where webhooks may be sent: the API checks a target when a subscription is created,
    the delivery worker again at each connection (DNS may have changed since)."""

    # Networks a webhook may reach besides the public internet (CIDRs, a JSON list:
    # '["127.0.0.0/8", "::1/128"]'). Empty: loopback, private, link-local (the cloud
    # metadata address), unique-local, unspecified and every other non-public address are
    # refused, so a subscription cannot make Chancery call into its own network.
    webhook_allowed_networks: list[str] = Field(default_factory=list)

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network.strip(), strict=False)
        return [network.strip() for network in value]


class IngestSettings(CommonSettings, AuthSettings):
    host: str = Field(default="127.0.0.1", validation_alias="CHANCERY_INGEST_HOST")
    port: Port = Field(default=8001, validation_alias="CHANCERY_INGEST_PORT")
    # granian worker processes. State is in Redis and Kafka, so workers share nothing but
    # the port; metrics are summed across them (prometheus_client's multiprocess mode).
    workers: int = Field(default=1, ge=1, le=64, validation_alias="CHANCERY_INGEST_WORKERS")
    max_batch_events: int = Field(default=1000, ge=1, le=10_000)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # A body that takes longer than this to arrive is refused (slow-body clients).
    body_timeout_s: float = Field(default=10.0, gt=0)
    # Bound on one publish (whole batch), after which the outcome is unknown -> 503.
    publish_timeout_s: float = Field(default=5.0, gt=0)
    retry_after_s: int = Field(default=5, ge=1)
    # How long (source, id) -> outcome is remembered for idempotent resubmission.
    idempotency_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    linger_ms: int = Field(default=2, ge=0)


class ProjectorSettings(CommonSettings):
    group_id: str = "chancery-projector"
    status_host: str = Field(default="127.0.0.1", validation_alias="CHANCERY_PROJECTOR_HOST")
    status_port: Port = Field(default=8003, validation_alias="CHANCERY_PROJECTOR_PORT")
    # Events per round, shared among the owned partitions: one atomic script per partition.
    # Larger rounds cost Redis less per event (fewer scripts, one ZADD per key for more
    # members); each 1,000 more holds about 10 MiB more while a round is in flight.
    max_batch_events: int = Field(
        default=4000, ge=1, validation_alias="CHANCERY_PROJECTOR_BATCH_EVENTS"
    )
    fetch_timeout_ms: int = Field(default=200, ge=1)
    # How many entries each partition's applied-event stream keeps for SSE resumption.
    stream_max_len: int = Field(default=1_000_000, ge=1000)


class DeliverSettings(CommonSettings, WebhookTargetSettings):
    """The webhook delivery worker, `chancery deliver`."""

    status_host: str = Field(default="127.0.0.1", validation_alias="CHANCERY_DELIVER_HOST")
    status_port: Port = Field(default=8004, validation_alias="CHANCERY_DELIVER_PORT")
    # One request: the receiver's time to answer (Standard Webhooks recommends 15-30 s).
    deliver_timeout_s: float = Field(default=15.0, gt=0, le=120)
    # A subscription is paused, with its last error, once one event has failed this many
    # attempts, or once it has failed for this long with no success in between.
    deliver_max_attempts: int = Field(default=20, ge=1)
    deliver_max_failing_hours: float = Field(default=24.0, gt=0)
    # The wait between attempts at one event: the first, doubling up to the longest, with
    # jitter; a receiver's Retry-After is honoured up to the longest.
    deliver_backoff_first_s: float = Field(default=1.0, gt=0)
    deliver_backoff_max_s: float = Field(default=600.0, gt=0)
    # Subjects (partition keys) delivered at once per subscription: one subject's events go
    # one at a time, in log order. A subscription delivers at most this many events per
    # receiver's response time (100 per second to a receiver answering in a second); the
    # default is as many connections as the worker opens to one host.
    deliver_concurrency: int = Field(default=100, ge=1, le=1000)
    # Events read ahead of delivery per subscription (reading pauses beyond).
    deliver_max_buffered: int = Field(default=2000, ge=1)
    # How long a worker's hold on a subscription lasts unless renewed: after a crash,
    # another worker (or the restarted one) takes the subscription over after this.
    deliver_lease_s: float = Field(default=10.0, gt=0)
    # How often the worker looks for new, paused, resumed and deleted subscriptions.
    deliver_poll_s: float = Field(default=1.0, gt=0)
    # Recent attempts kept per subscription (GET /v1/subscriptions/{id}/deliveries).
    deliver_attempts_kept: int = Field(default=100, ge=1, le=10_000)


class ApiSettings(CommonSettings, AuthSettings, WebhookTargetSettings):
    host: str = Field(default="127.0.0.1", validation_alias="CHANCERY_API_HOST")
    port: Port = Field(default=8002, validation_alias="CHANCERY_API_PORT")
    # How long a read with min_position waits for the projector before answering 504.
    min_position_wait_s: float = Field(default=5.0, gt=0, le=60)
    max_streams_per_client: int = Field(default=5, ge=1)
    stream_ping_s: float = Field(default=15.0, gt=0)
    cors_origins: list[str] = Field(default_factory=list)
    page_size_default: int = Field(default=50, ge=1)
    page_size_max: int = Field(default=500, ge=1)
    # The Atlas, the web page the API serves at /: where its build is (empty: atlas/dist of
    # the repository), how long a browser's sign-in lasts, and a secret mixed into the
    # session cookies' signature (without it, a copy of the keys file could forge one).
    atlas_dir: str = ""
    session_ttl_s: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    session_secret: SecretStr | None = None
