"""Configuration from the environment (SPEC §7), read once at start-up."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient, monitoring

from .kafka_access import KafkaAccessError, KafkaSecurity
from .topics import DAY_MS, TopicLayout

# A crash makes a service handle again what it handled since its last commit: beyond an
# hour, a mistyped interval would make that a backlog, not a repeat of a moment's work.
MAX_COMMIT_INTERVAL_MS = 3_600_000


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def env_int(
    name: str,
    default: int,
    *,
    minimum: int = 0,
    maximum: int | None = None,
    env: Mapping[str, str] = os.environ,
) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} must be at most {maximum}")
    return value


def env_float(
    name: str, default: float, *, minimum: float, env: Mapping[str, str] = os.environ
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw} must be at least {minimum:g}")
    return value


def _int_list(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        values = tuple(sorted({int(part) for part in raw.split(",") if part.strip()}, reverse=True))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} must be comma-separated whole seconds") from None
    if not values or min(values) <= 0:
        raise ConfigError(f"{name}={raw!r} must list positive numbers of seconds")
    return values


@dataclass(frozen=True, slots=True)
class Settings:
    service_name: str
    kafka_bootstrap_servers: str
    mongodb_url: str
    http_host: str
    http_port: int
    offer_ttl_seconds: int
    expiry_sweep_interval_seconds: int
    offer_reminder_leads_seconds: tuple[int, ...]
    max_contract_days: int
    max_offer_versions: int
    # How long a command for an offer this service has not heard of yet waits for the
    # offer's events before it is refused (SPEC §4's bounded wait).
    unknown_offer_wait_seconds: float
    # How often the deadlines of parked commands are checked.
    parked_sweep_interval_seconds: float

    # Where tests and side-by-side deployments keep apart; both default to the service name.
    database_name: str
    kafka_group_id: str

    # Kafka tuning (see bench/ for the figures behind the defaults). How long the broker may
    # hold a fetch that finds no records; it answers as soon as one arrives, so a short wait
    # buys no latency, only idle polling, which costs every service, the broker and the
    # cores they share: 50 ms (and KAFKA_BATCH_WAIT_MS 10) cost a third more CPU per
    # command at 20/s than 500 (measured, bench/latency.py, docs/benchmarks.md).
    kafka_fetch_max_wait_ms: int = 500
    # How long the producer waits to fill a batch; every publish is awaited (the outbox is
    # cleared only once the broker has the events), so this adds to each hop's latency.
    kafka_linger_ms: int = 0
    # Consumers in one instance, each a member of the service's group with its own share of
    # the partitions (the same partition numbers of every topic), a fetched batch at a time.
    # One: a batch already handles its aggregates side by side, and more consumers split the
    # records into smaller batches that each pay their own round trips (docs/benchmarks.md,
    # "Latency": at 220/s one consumer was 2-6 times faster and cheaper; at 60/s three were
    # faster).
    # More than the topics' partitions leaves the extra ones idle.
    kafka_consumers: int = 1
    # A consumer's batch (services.runtime.batch): at most this many records, what the
    # broker has at the moment; with nothing there, the fetch waits this long for a first
    # record (one that arrives ends the wait) and then asks again (services.runtime.kafka).
    kafka_batch_max_records: int = 500
    kafka_batch_wait_ms: int = 500
    # How often a consumer commits the offsets of the batches it has handled (Kafka Streams'
    # commit.interval.ms), instead of after each batch: a commit is a round trip the next
    # batch waited for (6 ms on Kafka 4.1, whose group coordinator lingers 5 ms before it
    # writes) and 1.6 ms of the broker's CPU. A crash redoes at most this much handled work,
    # which every handler takes as a repeat (services.runtime.kafka.Commits).
    kafka_commit_interval_ms: int = 1000  # at most MAX_COMMIT_INTERVAL_MS
    # Documents kept in memory between batches, per instance (their partitions' only writer).
    state_cache_size: int = 20_000
    # Static group membership (KIP-345): the name this instance's consumers keep across
    # restarts, so a restarted instance takes its partitions back at once. Each running
    # instance needs its own; None (HTTP_PORT=0, tests) joins as a new member each time.
    kafka_instance_id: str | None = None
    # How long the group waits for a silent member before its partitions go to the others.
    kafka_session_timeout_ms: int = 10_000
    # Partitions, replicas and retention of the topics the service creates.
    topic_layout: TopicLayout = field(default_factory=TopicLayout)
    # TLS and SASL towards Kafka (services.runtime.kafka_access); plaintext by default.
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)

    # Pushed streams (services.runtime.streams): the keep-alive comment's interval, the
    # items one client may fall behind by before it is cut off (to resume), the clients one
    # instance serves at once, and how long one write to a client may take before the
    # client counts as gone.
    stream_heartbeat_seconds: float = 15.0
    stream_client_buffer: int = 1000
    stream_max_connections: int = 1000
    stream_send_timeout_seconds: float = 30.0

    @classmethod
    def from_env(cls, service_name: str, default_http_port: int) -> Settings:
        return cls(
            service_name=service_name,
            kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            mongodb_url=os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017"),
            http_host=os.environ.get("HTTP_HOST", "127.0.0.1"),
            http_port=env_int("HTTP_PORT", default_http_port, minimum=0),
            offer_ttl_seconds=env_int("OFFER_TTL_SECONDS", 30 * 24 * 3600, minimum=1),
            expiry_sweep_interval_seconds=env_int("EXPIRY_SWEEP_INTERVAL_SECONDS", 60, minimum=1),
            offer_reminder_leads_seconds=_int_list(
                "OFFER_REMINDER_LEADS_SECONDS", (72 * 3600, 24 * 3600)
            ),
            max_contract_days=env_int("MAX_CONTRACT_DAYS", 180, minimum=1, maximum=3660),
            max_offer_versions=env_int("MAX_OFFER_VERSIONS", 50, minimum=1, maximum=200),
            unknown_offer_wait_seconds=float(env_int("UNKNOWN_OFFER_WAIT_MS", 5000)) / 1000,
            parked_sweep_interval_seconds=env_int("PARKED_SWEEP_INTERVAL_MS", 1000, minimum=10)
            / 1000,
            database_name=os.environ.get("MONGODB_DATABASE", service_name),
            kafka_group_id=os.environ.get("KAFKA_GROUP_ID", service_name),
            kafka_fetch_max_wait_ms=env_int("KAFKA_FETCH_MAX_WAIT_MS", 500, minimum=1),
            kafka_linger_ms=env_int("KAFKA_LINGER_MS", 0),
            kafka_consumers=env_int("KAFKA_CONSUMERS", 1, minimum=1),
            kafka_batch_max_records=env_int("KAFKA_BATCH_MAX_RECORDS", 500, minimum=1),
            kafka_batch_wait_ms=env_int("KAFKA_BATCH_WAIT_MS", 500, minimum=1),
            kafka_commit_interval_ms=env_int(
                "KAFKA_COMMIT_INTERVAL_MS", 1000, minimum=1, maximum=MAX_COMMIT_INTERVAL_MS
            ),
            state_cache_size=env_int("STATE_CACHE_SIZE", 20_000, minimum=0),
            kafka_instance_id=instance_id(service_name, env_int("HTTP_PORT", default_http_port)),
            kafka_session_timeout_ms=env_int("KAFKA_SESSION_TIMEOUT_MS", 10_000, minimum=6000),
            topic_layout=topic_layout_from_env(),
            kafka_security=kafka_security_from_env(),
            stream_heartbeat_seconds=env_int("STREAM_HEARTBEAT_SECONDS", 15, minimum=1),
            stream_client_buffer=env_int("STREAM_CLIENT_BUFFER", 1000, minimum=1),
            stream_max_connections=env_int("STREAM_MAX_CONNECTIONS", 1000, minimum=1),
            stream_send_timeout_seconds=env_int("STREAM_SEND_TIMEOUT_SECONDS", 30, minimum=1),
        )

    def kafka_options(self) -> dict[str, Any]:
        """Keyword arguments for an aiokafka client of this service's cluster."""
        return self.kafka_security.client_options(self.kafka_bootstrap_servers)

    def kafka_address(self) -> str:
        return self.kafka_security.describe(self.kafka_bootstrap_servers)


def kafka_security_from_env() -> KafkaSecurity:
    try:
        return KafkaSecurity.from_env()
    except KafkaAccessError as error:
        raise ConfigError(str(error)) from None


def topic_layout_from_env() -> TopicLayout:
    """The topic settings (services.runtime.topics): the same for every service."""
    replicas = env_int("KAFKA_REPLICATION_FACTOR", 1, minimum=1)
    return TopicLayout(
        partitions=env_int("KAFKA_TOPIC_PARTITIONS", 3, minimum=1),
        replication_factor=replicas,
        min_insync_replicas=env_int("KAFKA_MIN_INSYNC_REPLICAS", min(2, replicas), minimum=1),
        events_retention_ms=_retention("KAFKA_EVENTS_RETENTION_MS", -1),
        commands_retention_ms=_retention("KAFKA_COMMANDS_RETENTION_MS", 7 * DAY_MS),
        rejections_retention_ms=_retention("KAFKA_REJECTIONS_RETENTION_MS", 30 * DAY_MS),
        dead_letter_retention_ms=_retention("KAFKA_DEAD_LETTER_RETENTION_MS", 30 * DAY_MS),
    )


def _retention(name: str, default: int) -> int:
    """Milliseconds, or -1 for forever (Kafka's own spelling)."""
    raw = os.environ.get(name, "").strip()
    if raw == "-1":
        return -1
    return env_int(name, default, minimum=1)


def bootstrap_list(servers: str) -> list[str]:
    """KAFKA_BOOTSTRAP_SERVERS ("host:port,host:port", as Kafka's tools take it) as a list:
    FastStream passes a string on as one server, where aiokafka would have split it."""
    return [server.strip() for server in servers.split(",") if server.strip()]


def instance_id(service_name: str, http_port: int) -> str | None:
    """KAFKA_GROUP_INSTANCE_ID, or one name per instance on one host (each listens on its
    own HTTP port); none with KAFKA_STATIC_MEMBERSHIP=false, or on a random port."""
    if os.environ.get("KAFKA_STATIC_MEMBERSHIP", "true").strip().lower() in ("false", "0", "no"):
        return None
    explicit = os.environ.get("KAFKA_GROUP_INSTANCE_ID", "").strip()
    if explicit:
        return explicit
    return None if http_port == 0 else f"{service_name}@{socket.gethostname()}:{http_port}"


def mongo_client(
    settings: Settings, listeners: Sequence[monitoring.CommandListener] = ()
) -> AsyncMongoClient[dict[str, Any]]:
    # tz_aware: times come back as aware UTC datetimes, like the ones the services write.
    return AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        event_listeners=listeners,
    )
