"""Real Kafka and a real MongoDB-compatible database for the integration and e2e tiers.

In order: KAFKA_BOOTSTRAP_SERVERS and MONGODB_URL when both are set; testcontainers when a
Docker engine answers; otherwise the local infrastructure (infra/infra.py up), started
here if it is not running. When none can be had the run FAILS, saying why: an
integration test is never skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap_servers: str
    mongodb_url: str
    source: str


class InfrastructureUnavailable(RuntimeError):
    pass


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@contextmanager
def _containers() -> Iterator[Endpoints]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    with ExitStack() as stack:
        kafka = stack.enter_context(KafkaContainer("apache/kafka:4.1.1").with_kraft())
        mongo = stack.enter_context(MongoDbContainer("mongo:8"))
        yield Endpoints(kafka.get_bootstrap_server(), mongo.get_connection_url(), "testcontainers")


def own_infra_env() -> dict[str, str]:
    """infra/test.env: the tests' own Kafka and database, apart from `make run`'s."""
    lines = (REPO / "infra" / "test.env").read_text().split()
    return dict(line.split("=", 1) for line in lines)


def _local() -> Endpoints:
    own = own_infra_env()
    result = subprocess.run(
        [sys.executable, str(REPO / "infra" / "infra.py"), "up"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, **own},
    )
    if result.returncode != 0:
        raise InfrastructureUnavailable(
            "no Kafka/MongoDB for the integration tests: KAFKA_BOOTSTRAP_SERVERS and "
            "MONGODB_URL are not set, no Docker engine answers, and `infra/infra.py up` "
            f"(with infra/test.env) failed:\n{result.stdout}{result.stderr}"
        )
    return Endpoints(own["KAFKA_BOOTSTRAP_SERVERS"], own["MONGODB_URL"], "infra/infra.py")


@contextmanager
def endpoints() -> Iterator[Endpoints]:
    kafka, mongo = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URL")
    if kafka and mongo:
        yield Endpoints(kafka, mongo, "environment")
    elif _docker_answers():
        with _containers() as found:
            yield found
    else:
        yield _local()
