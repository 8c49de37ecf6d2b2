"""The three services as real processes (as `make run` starts them), each with a database
and consumer groups of its own, and the infrastructure commands the restart faults use."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.processes import SERVICES, ServiceProcess, start_at_the_end

REPO = Path(__file__).resolve().parents[1]


@dataclass
class System:
    """offer_service, messaging_service and notification_service on ports base..base+2;
    with `instances` > 1, that many of each (named offer_service, offer_service-2, ...), in one
    consumer group and one database per service, on the ports that follow."""

    run_id: str
    bootstrap: str
    mongodb_url: str
    log_dir: Path
    base_port: int
    extra_env: dict[str, str] = field(default_factory=dict)
    only: tuple[str, ...] = SERVICES
    instances: int = 1
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for instance in range(1, self.instances + 1):
            for name in self.only:
                self._add(name, instance, self.base_port + len(self.services))

    def _add(self, name: str, instance: int, port: int) -> None:
        key = name if instance == 1 else f"{name}-{instance}"
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "MONGODB_URL": self.mongodb_url,
            "MONGODB_DATABASE": f"faults_{name}_{self.run_id}",
            "KAFKA_GROUP_ID": f"faults-{name}-{self.run_id}",
            "HTTP_PORT": str(port),
            # The services' default: the relay looks for unpublished outboxes this often.
            # SPEC §4's bounded wait for an offer not heard of yet: a fault can hold
            # offer_service's events back well past the 5 s default (a burst of 1,000s of
            # commands, a restart), and the verdict wants every chat message to pass.
            "UNKNOWN_OFFER_WAIT_MS": "60000",
            **self.extra_env,
        }
        self.services[key] = ServiceProcess(name, port, env, self.log_dir / f"{key}.log")

    @property
    def databases(self) -> dict[str, str]:
        """Each service's database (its instances share it)."""
        return {service.name: service.database for service in self.services.values()}

    async def start(self) -> None:
        for key, service in self.services.items():
            if key == service.name:  # once per consumer group
                await start_at_the_end(self.bootstrap, service.name, service.env["KAFKA_GROUP_ID"])
            service.start()
        for service in self.services.values():
            await asyncio.to_thread(service.wait_healthy)

    async def restart(self, name: str, env: Mapping[str, str] | None = None) -> None:
        """kill -9 one service and start it again at once; returns when it is healthy.
        `env` is added to its environment for this start only: a later restart without it
        starts the service as configured (tests/faults/test_kill_mid_batch.py starts one
        with FAULT_CRASH_AT, then again without)."""
        service = self.services[name]
        service.kill()
        configured = service.env
        service.env = {**configured, **(env or {})}
        try:
            service.start()
        finally:
            service.env = configured
        await asyncio.to_thread(service.wait_healthy)

    async def exited(self, name: str, within: float) -> int | None:
        """Waits up to `within` seconds for one service's process to end by itself: its exit
        status (negative: the signal that ended it), or None when it still runs."""
        process = self.services[name].process
        assert process is not None, f"{name} was never started"
        try:
            return await asyncio.to_thread(process.wait, within)
        except subprocess.TimeoutExpired:
            return None

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


def cluster(*args: str) -> None:
    """`python3 infra/cluster.py ARGS` (the three-broker cluster), its progress lines shown."""
    subprocess.run([sys.executable, str(REPO / "infra" / "cluster.py"), *args], check=True)


def cluster_bootstrap() -> str:
    """The cluster's bootstrap list, as infra/cluster.py reads its ports from the environment."""
    result = subprocess.run(
        [sys.executable, str(REPO / "infra" / "cluster.py"), "bootstrap"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def infra_ok() -> bool:
    result = subprocess.run(
        [sys.executable, str(REPO / "infra" / "infra.py"), "status"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0
