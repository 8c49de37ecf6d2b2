"""The three services as real processes (as `make run` starts them), each with a database
and consumer groups of its own, and the infrastructure commands the restart faults use."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from services.processes import SERVICES, ServiceProcess, start_at_the_end

REPO = Path(__file__).resolve().parents[1]


@dataclass
class System:
    """offer_service, messaging_service and notification_service on ports base..base+2."""

    run_id: str
    bootstrap: str
    mongodb_url: str
    log_dir: Path
    base_port: int
    extra_env: dict[str, str] = field(default_factory=dict)
    only: tuple[str, ...] = SERVICES
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for n, name in enumerate(self.only):
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "MONGODB_URL": self.mongodb_url,
                "MONGODB_DATABASE": f"faults_{name}_{self.run_id}",
                "KAFKA_GROUP_ID": f"faults-{name}-{self.run_id}",
                "HTTP_PORT": str(self.base_port + n),
                # The services' default: the relay looks for unpublished outboxes this often.
                # SPEC §4's bounded wait for an offer not heard of yet: a fault can hold
                # offer_service's events back well past the 5 s default (a burst of 1,000s of
                # commands, a restart), and the verdict wants every chat message to pass.
                "UNKNOWN_OFFER_WAIT_MS": "60000",
                **self.extra_env,
            }
            self.services[name] = ServiceProcess(
                name, self.base_port + n, env, self.log_dir / f"{name}.log"
            )

    @property
    def databases(self) -> dict[str, str]:
        return {name: service.database for name, service in self.services.items()}

    async def start(self) -> None:
        for name, service in self.services.items():
            await start_at_the_end(self.bootstrap, name, service.env["KAFKA_GROUP_ID"])
            service.start()
        for service in self.services.values():
            await asyncio.to_thread(service.wait_healthy)

    async def restart(self, name: str) -> None:
        """kill -9 one service and start it again at once; returns when it is healthy."""
        service = self.services[name]
        service.kill()
        service.start()
        await asyncio.to_thread(service.wait_healthy)

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    def alive(self) -> dict[str, bool]:
        return {
            name: bool(s.process and s.process.poll() is None) for name, s in self.services.items()
        }


def infra(*args: str) -> None:
    """`python3 infra/infra.py ARGS`, its progress lines shown; raises when it fails."""
    subprocess.run([sys.executable, str(REPO / "infra" / "infra.py"), *args], check=True)


def infra_ok() -> bool:
    result = subprocess.run(
        [sys.executable, str(REPO / "infra" / "infra.py"), "status"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0
