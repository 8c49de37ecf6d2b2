"""Who may write which topic, shown on the test broker, which runs Kafka's authorizer on
its SASL_SSL listener (infra/infra.py): the gateway's principal, granted what README's
ACL table gives it, may write a command topic and is refused a write to offers.events, so
it cannot forge the OfferAccepted that messaging_service and notification_service believe.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from contracts import topics
from services.processes import REPO
from services.runtime.kafka_access import KafkaSecurity
from tests.infrastructure import own_infra_env
from tests.kit import Parties

from .test_secured_kafka import Listener, listener

__all__ = ["listener"]  # the secured listener's fixture, shared

pytestmark = pytest.mark.e2e


def infra(*arguments: str, stdin: str | None = None) -> None:
    """infra/infra.py against this test run's infrastructure (infra/test.env)."""
    ran = subprocess.run(
        [sys.executable, str(REPO / "infra" / "infra.py"), *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **own_infra_env()},
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr + ran.stdout


async def test_the_gateways_principal_writes_commands_and_is_refused_offers_events(
    listener: Listener,
) -> None:
    gateway, password = f"gateway-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    infra("kafka-user", gateway, "-", stdin=password + "\n")
    # README's row for the gateway: Write (and Describe) on the command topics only.
    for topic in topics.COMMANDS:
        infra(
            "kafka-acl", "--add", "--allow-principal", f"User:{gateway}",
            "--operation", "Write", "--operation", "Describe", "--topic", topic,
        )  # fmt: skip
    security = KafkaSecurity(
        "SASL_SSL",
        "SCRAM-SHA-512",
        sasl_username=gateway,
        sasl_password=password,
        ssl_ca_file=str(listener.tls / "ca.pem"),
    )
    # Not idempotent: that needs IdempotentWrite on the cluster, which is not the point here.
    producer = AIOKafkaProducer(
        **security.client_options(listener.bootstrap), acks="all", request_timeout_ms=10_000
    )
    await producer.start()
    try:
        parties = Parties()
        command = parties.extend()
        written = await producer.send_and_wait(
            topics.OFFERS_COMMANDS, b"{}", key=parties.offer_id.encode()
        )
        assert written.topic == topics.OFFERS_COMMANDS
        forged = {
            "type": "OfferAccepted",
            "event_id": str(uuid.uuid4()),
            "offer_id": command["offer_id"],
            "freelancer_id": parties.freelancer_id,
        }
        with pytest.raises(KafkaError) as refused:
            await producer.send_and_wait(
                topics.OFFERS_EVENTS, str(forged).encode(), key=parties.offer_id.encode()
            )
        assert isinstance(refused.value, TopicAuthorizationFailedError), repr(refused.value)
    finally:
        await producer.stop()
