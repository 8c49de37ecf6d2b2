"""The gateway's configuration, from the environment (read once at start-up)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.runtime.config import ConfigError, env_float, env_int

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes"}:
        return True
    if raw in {"0", "false", "no"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


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
    # Whether a stream may name its actor in `?actor_id=` (an EventSource cannot set a
    # header). Only for the local stand-in, where nothing authenticates and the page names
    # its party itself; behind the authenticating proxy the header it sets is the only
    # actor. Default: on when the gateway listens on loopback only.
    page_actor: bool = True
    # Commands per actor: `command_burst` at once, refilled at `commands_per_minute` (429
    # with Retry-After beyond): one client cannot flood a freelancer's inbox.
    commands_per_minute: float = 60.0
    command_burst: int = 20
    # Streams one actor may hold open through this instance (a page holds two).
    streams_per_actor: int = 8
    # Origins besides the gateway's own whose pages may POST /commands (the public origin
    # of the page, when the proxy in front changes the Host or the scheme).
    allowed_origins: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GatewaySettings:
        host = env.get("GATEWAY_HOST", "").strip() or "127.0.0.1"
        return cls(
            host=host,
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
            page_actor=_flag(env, "GATEWAY_PAGE_ACTOR", host in LOOPBACK),
            commands_per_minute=env_float(
                "GATEWAY_COMMANDS_PER_MINUTE", 60.0, minimum=0.1, env=env
            ),
            command_burst=env_int("GATEWAY_COMMAND_BURST", 20, minimum=1, env=env),
            streams_per_actor=env_int("GATEWAY_STREAMS_PER_ACTOR", 8, minimum=1, env=env),
            allowed_origins=frozenset(
                o.strip().rstrip("/")
                for o in env.get("GATEWAY_ALLOWED_ORIGINS", "").split(",")
                if o.strip()
            ),
        )
