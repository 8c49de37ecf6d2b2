"""The gateway's configuration, from the environment (read once at start-up)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.runtime.config import env_float, env_int


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
            port=env_int("GATEWAY_PORT", 8000, minimum=0, env=env),
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
            or "127.0.0.1:9092",
            offer_service_url=_url(env, "OFFER_SERVICE_URL", "http://127.0.0.1:8001"),
            messaging_service_url=_url(env, "MESSAGING_SERVICE_URL", "http://127.0.0.1:8002"),
            notification_service_url=_url(env, "NOTIFICATION_SERVICE_URL", "http://127.0.0.1:8003"),
            max_contract_days=env_int("MAX_CONTRACT_DAYS", 180, minimum=1, env=env),
            publish_timeout_seconds=env_float(
                "GATEWAY_PUBLISH_TIMEOUT_SECONDS", 5.0, minimum=0.1, env=env
            ),
        )
