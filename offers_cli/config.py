"""Where the system is and who is speaking: environment variables (SPEC §7 defaults)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    kafka: str
    offer_service: str
    messaging_service: str
    notification_service: str
    actor: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Config:
        return cls(
            kafka=env.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092",
            offer_service=(env.get("OFFER_SERVICE_URL") or "http://127.0.0.1:8001").rstrip("/"),
            messaging_service=(env.get("MESSAGING_SERVICE_URL") or "http://127.0.0.1:8002").rstrip(
                "/"
            ),
            notification_service=(
                env.get("NOTIFICATION_SERVICE_URL") or "http://127.0.0.1:8003"
            ).rstrip("/"),
            actor=env.get("OFFERS_ACTOR") or None,
        )
