"""The services as real processes, as `make run` starts them."""

from __future__ import annotations

import os
from pathlib import Path

from services.processes import GATEWAY, ServiceProcess, start_at_the_end
from tests.infrastructure import Endpoints

__all__ = ["ServiceProcess", "gateway_process", "launch", "service_process"]


def service_process(
    name: str, port: int, infra: Endpoints, tmp: Path, run_id: str, **extra: str
) -> ServiceProcess:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "MONGODB_URL": infra.mongodb_url,
        "MONGODB_DATABASE": f"e2e_{name}_{run_id}",
        "KAFKA_GROUP_ID": f"e2e-{name}",
        "HTTP_PORT": str(port),
        **extra,
    }
    return ServiceProcess(name, port, env, tmp / f"{name}.log")


async def launch(name: str, port: int, infra: Endpoints, tmp: Path, run_id: str) -> ServiceProcess:
    """Starts a service in a consumer group of this run's own that begins at the topics'
    current ends (what earlier tests left there belongs to other databases)."""
    service = service_process(name, port, infra, tmp, run_id)
    service.env["KAFKA_GROUP_ID"] = f"e2e-{name}-{run_id}"
    await start_at_the_end(infra.kafka_bootstrap_servers, name, service.env["KAFKA_GROUP_ID"])
    service.start()
    return service


def gateway_process(
    port: int, infra: Endpoints, tmp: Path, services: dict[str, ServiceProcess]
) -> ServiceProcess:
    """`python -m services.gateway` in front of these services' read APIs."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "GATEWAY_PORT": str(port),
        "OFFER_SERVICE_URL": services["offer_service"].url,
        "MESSAGING_SERVICE_URL": services["messaging_service"].url,
        "NOTIFICATION_SERVICE_URL": services["notification_service"].url,
    }
    return ServiceProcess(GATEWAY, port, env, tmp / "gateway.log")
