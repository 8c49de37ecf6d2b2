"""TLS and SASL towards Kafka, against the test broker's SASL_SSL listener (infra/test.env:
KAFKA_SECURED_PORT), with the throwaway CA and certificates infra/infra.py made for it and
SCRAM credentials made here: the services and the CLI connect and work, and wrong
credentials stop a service with one line that says what to fix."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.processes import REPO, start_at_the_end
from services.runtime.kafka_access import KafkaRefused, KafkaSecurity
from tests.conftest import RUN_ID
from tests.e2e.processes import ServiceProcess, service_process
from tests.infrastructure import Endpoints, own_infra_env

pytestmark = pytest.mark.e2e

SERVICE_PORT, REFUSED_PORT = 18321, 18322
PLATFORM_USER = "platform"  # infra/infra.py makes it, for PLAIN and SCRAM alike


def extend_args(tag: str) -> list[str]:
    return [
        "--as", f"client-{tag}", "--freelancer", f"free-{tag}", "--offer-id", f"offer-{tag}",
        "--title", "Over TLS", "--description", "Secured.", "--rate", "40",
        "--weekly-limit", "10", "--start", "+3", "--end", "+30", "--talent-cloud", "tc-tls",
    ]  # fmt: skip


@dataclass(frozen=True)
class Listener:
    bootstrap: str
    tls: Path
    password: str  # the user `platform`'s, for PLAIN and both SCRAM mechanisms

    def security(self, mechanism: str, *, password: str | None = None) -> KafkaSecurity:
        return KafkaSecurity(
            "SASL_SSL",
            mechanism,
            sasl_username=PLATFORM_USER,
            sasl_password=password or self.password,
            ssl_ca_file=str(self.tls / "ca.pem"),
        )

    def env(
        self, mechanism: str, *, password: str | None = None, client_cert: bool = False
    ) -> dict[str, str]:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": PLATFORM_USER,
            "KAFKA_SASL_PASSWORD": password or self.password,
            "KAFKA_SSL_CA_FILE": str(self.tls / "ca.pem"),
        }
        if client_cert:
            env |= {
                "KAFKA_SSL_CERT_FILE": str(self.tls / "client.pem"),
                "KAFKA_SSL_KEY_FILE": str(self.tls / "client.key"),
            }
        return env


def setting(name: str) -> str:
    return os.environ.get(name) or own_infra_env().get(name, "")


@pytest.fixture(scope="module")
def listener(infra: Endpoints) -> Listener:
    port = setting("KAFKA_SECURED_PORT")
    if not port:
        pytest.fail(
            "these tests need the test broker's SASL_SSL listener: set KAFKA_SECURED_PORT (as "
            "infra/test.env does) and run `infra/infra.py up` with it",
            pytrace=False,
        )
    tls = (REPO / setting("INFRA_DIR")).resolve() / "tls"
    return Listener(f"127.0.0.1:{port}", tls, (tls / "plain.password").read_text().strip())


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_each_mechanism_carries_records_and_refuses_a_wrong_password(
    listener: Listener, mechanism: str
) -> None:
    security = listener.security(mechanism)
    topic, value = f"secured-{RUN_ID}", uuid.uuid4().bytes
    producer = AIOKafkaProducer(**security.client_options(listener.bootstrap), acks="all")
    consumer = AIOKafkaConsumer(**security.client_options(listener.bootstrap))
    await producer.start()
    await consumer.start()
    try:
        sent = await producer.send_and_wait(topic, value)
        partition = TopicPartition(topic, sent.partition)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        got = await asyncio.wait_for(consumer.getone(), 20)
        assert got.value == value
    finally:
        await producer.stop()
        await consumer.stop()

    wrong = listener.security(mechanism, password="not-the-password")
    with pytest.raises(KafkaRefused, match="refused the credentials") as refused:
        await wrong.probe(listener.bootstrap)
    assert "not-the-password" not in str(refused.value)


async def test_a_certificate_from_another_ca_is_refused(listener: Listener, tmp_path: Path) -> None:
    # The system's CAs (no KAFKA_SSL_CA_FILE) do not know the broker's throwaway CA.
    untrusting = KafkaSecurity("SSL")
    with pytest.raises(KafkaRefused, match=r"does not trust .*KAFKA_SSL_CA_FILE"):
        await untrusting.probe(listener.bootstrap)


@pytest.fixture(scope="module")
async def secured_offer_service(
    infra: Endpoints, listener: Listener, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("secured-logs")
    # SCRAM-SHA-512 and a client certificate (mutual TLS); the CLI below uses SCRAM-SHA-256.
    secured = listener.env("SCRAM-SHA-512", client_cert=True)
    service = service_process("offer_service", SERVICE_PORT, infra, logs, RUN_ID, **secured)
    service.env["KAFKA_GROUP_ID"] = group = f"e2e-secured-offer_service-{RUN_ID}"
    await start_at_the_end(infra.kafka_bootstrap_servers, "offer_service", group)
    service.start()
    try:
        await asyncio.to_thread(service.wait_healthy)
        yield service
    finally:
        service.stop()


async def test_a_service_and_the_cli_work_over_sasl_ssl(
    listener: Listener, secured_offer_service: ServiceProcess
) -> None:
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        **listener.env("SCRAM-SHA-256"),
        "OFFER_SERVICE_URL": secured_offer_service.url,
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "offers_cli", "extend", *extend_args(tag)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"✔ OfferExtended offer offer-{tag} version 1" in done.stdout
    log = secured_offer_service.log_path.read_text()
    assert f"{listener.bootstrap} (SASL_SSL, SCRAM-SHA-512 as '{PLATFORM_USER}')" in log


async def test_wrong_credentials_stop_a_service_with_one_clear_line(
    infra: Endpoints, listener: Listener, tmp_path: Path
) -> None:
    service = service_process(
        "offer_service",
        REFUSED_PORT,
        infra,
        tmp_path,
        RUN_ID + "refused",
        **listener.env("SCRAM-SHA-512", password="not-the-password"),
    )
    service.start()
    assert service.process is not None
    code = await asyncio.to_thread(service.process.wait, 60)
    log = service.log_path.read_text()
    assert code == 1, log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    errors = [line["message"] for line in lines if line["level"] in ("error", "critical")]
    assert len(errors) == 1, log
    assert "refused the credentials" in errors[0]
    assert f"SCRAM-SHA-512 as '{PLATFORM_USER}'" in errors[0]
    assert "KAFKA_SASL_PASSWORD" in errors[0]
    assert "Traceback" not in log and "not-the-password" not in log
