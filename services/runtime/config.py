"""Configuration from the environment (SPEC §7), read once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
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
    # How long a command for an offer this service has not heard of yet waits for the
    # offer's events before it is refused (SPEC §4's bounded wait).
    unknown_offer_wait_seconds: float
    # Events still in a document's outbox after this long are republished by the relay.
    outbox_relay_after_seconds: int

    # Where tests and side-by-side deployments keep apart; both default to the service name.
    database_name: str
    kafka_group_id: str

    # Kafka tuning (see bench/ for the figures behind the defaults). How long the broker may
    # hold a fetch that finds no records; it answers as soon as one arrives, so lowering this
    # (10 ms was measured) bought no latency, only more idle polling.
    kafka_fetch_max_wait_ms: int = 50
    # How long the producer waits to fill a batch; every publish is awaited (the outbox is
    # cleared only once the broker has the events), so this adds to each hop's latency.
    kafka_linger_ms: int = 0
    # Consumers per subscribed topic in one instance, each a member of the service's group
    # handling its own partitions one record at a time: partitions are handled concurrently,
    # and each aggregate (one key, one partition) still has one writer. More than the
    # topic's partitions leaves the extra ones idle.
    kafka_consumers_per_topic: int = 3

    @classmethod
    def from_env(cls, service_name: str, default_http_port: int) -> Settings:
        return cls(
            service_name=service_name,
            kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            mongodb_url=os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017"),
            http_host=os.environ.get("HTTP_HOST", "127.0.0.1"),
            http_port=_int("HTTP_PORT", default_http_port, minimum=0),
            offer_ttl_seconds=_int("OFFER_TTL_SECONDS", 30 * 24 * 3600, minimum=1),
            expiry_sweep_interval_seconds=_int("EXPIRY_SWEEP_INTERVAL_SECONDS", 60, minimum=1),
            offer_reminder_leads_seconds=_int_list(
                "OFFER_REMINDER_LEADS_SECONDS", (72 * 3600, 24 * 3600)
            ),
            max_contract_days=_int("MAX_CONTRACT_DAYS", 180, minimum=1),
            unknown_offer_wait_seconds=float(_int("UNKNOWN_OFFER_WAIT_MS", 5000)) / 1000,
            outbox_relay_after_seconds=_int("OUTBOX_RELAY_AFTER_SECONDS", 5, minimum=1),
            database_name=os.environ.get("MONGODB_DATABASE", service_name),
            kafka_group_id=os.environ.get("KAFKA_GROUP_ID", service_name),
            kafka_fetch_max_wait_ms=_int("KAFKA_FETCH_MAX_WAIT_MS", 50, minimum=1),
            kafka_linger_ms=_int("KAFKA_LINGER_MS", 0),
            kafka_consumers_per_topic=_int("KAFKA_CONSUMERS_PER_TOPIC", 3, minimum=1),
        )


def mongo_client(settings: Settings) -> AsyncMongoClient[dict[str, Any]]:
    # tz_aware: times come back as aware UTC datetimes, like the ones the services write.
    return AsyncMongoClient(settings.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000)
