"""The services as operating-system processes, as `make run` starts them: what the end-to-end
tests, the fault suite and the benchmarks run and kill."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.runtime.kafka_access import client_options

from .messaging_service import app as messaging_service
from .notification_service import app as notification_service
from .offer_service import app as offer_service
from .runtime.kafka import ensure_topics

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("offer_service", "messaging_service", "notification_service")
# The browsers' front door (services.gateway): no consumer group, no database of its own.
GATEWAY = "gateway"

TABLES = {
    table.name: table
    for table in (offer_service.TABLE, messaging_service.TABLE, notification_service.TABLE)
}


def consumed_topics(service: str, group_id: str) -> tuple[str, ...]:
    """The topics a deployment of the service consumes (its table, its internal topic), so
    that a new consumer group can start at their ends."""
    return TABLES[service].for_group(group_id).consumed_topics


@dataclass
class ServiceProcess:
    """`python -m services.<name>` with its environment, logging to `log_path`."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self) -> str:
        return self.env["MONGODB_DATABASE"]

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process is not None, f"{self.name} was never started"
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; log:\n"
                    + self.log_path.read_text(errors="replace")[-3000:]
                )
            if self.healthy():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not healthy after {within}s; log: {self.log_path}")

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


async def start_at_the_end(bootstrap: str, service: str, group_id: str) -> None:
    """Commits the current ends of the topics the service consumes for a new consumer
    group, so it skips what earlier runs left on the topics (their offers live in other
    databases: each old command would be parked, waiting for an offer that never comes)."""
    names = consumed_topics(service, group_id)
    counts = await ensure_topics(bootstrap, names)
    consumer = AIOKafkaConsumer(**client_options(bootstrap), group_id=group_id)
    await consumer.start()
    try:
        partitions = [TopicPartition(name, n) for name in names for n in range(counts[name])]
        consumer.assign(partitions)
        await consumer.commit(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()
