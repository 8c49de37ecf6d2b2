"""The services as real processes, as `make run` starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from contracts import topics
from tests.infrastructure import Endpoints
from tests.kit import start_at_the_end

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}; log:\n"
                    + self.log_path.read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not healthy after {within}s")

    def kill(self) -> None:
        """kill -9: no shutdown hook runs, nothing is flushed."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


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
        "OUTBOX_RELAY_AFTER_SECONDS": "1",
        **extra,
    }
    return ServiceProcess(name, port, env, tmp / f"{name}.log")


# The topics each service consumes, so a test can start its consumer group at their ends.
CONSUMES = {
    "offer_service": (topics.OFFERS_COMMANDS, topics.CONTRACTS_COMMANDS, topics.OFFERS_EVENTS),
    "messaging_service": (topics.NEGOTIATIONS_COMMANDS, topics.OFFERS_EVENTS),
    "notification_service": (
        topics.OFFERS_EVENTS,
        topics.CONTRACTS_EVENTS,
        topics.TALENT_CLOUDS_EVENTS,
        topics.NEGOTIATIONS_EVENTS,
        topics.NOTIFICATIONS_COMMANDS,
    ),
}


async def launch(name: str, port: int, infra: Endpoints, tmp: Path, run_id: str) -> ServiceProcess:
    """Starts a service in a consumer group of this run's own that begins at the topics'
    current ends (what earlier tests left there belongs to other databases)."""
    service = service_process(name, port, infra, tmp, run_id)
    service.env["KAFKA_GROUP_ID"] = f"e2e-{name}-{run_id}"
    await start_at_the_end(
        infra.kafka_bootstrap_servers, service.env["KAFKA_GROUP_ID"], CONSUMES[name]
    )
    service.start()
    return service
