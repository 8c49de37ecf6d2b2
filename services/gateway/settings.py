"""The gateway's configuration, from the environment (read once at start-up)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class GatewayConfigError(ValueError):
    """An environment variable holds a value the gateway cannot use."""


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise GatewayConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise GatewayConfigError(f"{name}={raw} must be at least {minimum:g}")
    return value


def _whole(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise GatewayConfigError(f"{name}={raw!r} is not a whole number")
    if int(raw) < minimum:
        raise GatewayConfigError(f"{name}={raw} must be at least {minimum}")
    return int(raw)


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    return (env.get(name, "").strip() or default).rstrip("/")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8000
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # The upstream read APIs (the same variables the CLI reads).
    offer_service_url: str = "http://127.0.0.1:8001"
    messaging_service_url: str = "http://127.0.0.1:8002"
    notification_service_url: str = "http://127.0.0.1:8003"
    # The compliance policy the terms are checked against (SPEC §3), as the services read it.
    max_contract_days: int = 180
    # How long a publish may take before the gateway answers 503.
    publish_timeout_seconds: float = 5.0
    # The longest a GET /commands/{id}?wait= may hold the request open.
    max_outcome_wait_seconds: float = 30.0
    # How many recent command outcomes are remembered for GET /commands/{id}.
    remembered_outcomes: int = 10_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GatewaySettings:
        return cls(
            host=env.get("GATEWAY_HOST", "").strip() or "127.0.0.1",
            port=_whole(env, "GATEWAY_PORT", 8000, minimum=0),
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
            or "127.0.0.1:9092",
            offer_service_url=_url(env, "OFFER_SERVICE_URL", "http://127.0.0.1:8001"),
            messaging_service_url=_url(env, "MESSAGING_SERVICE_URL", "http://127.0.0.1:8002"),
            notification_service_url=_url(env, "NOTIFICATION_SERVICE_URL", "http://127.0.0.1:8003"),
            max_contract_days=_whole(env, "MAX_CONTRACT_DAYS", 180, minimum=1),
            publish_timeout_seconds=_number(
                env, "GATEWAY_PUBLISH_TIMEOUT_SECONDS", 5.0, minimum=0.1
            ),
        )
