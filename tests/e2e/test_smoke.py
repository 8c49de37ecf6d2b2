"""The three services as real processes, driven only through Kafka (a plain aiokafka
producer) and their HTTP read APIs, with the database checked directly."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from contracts import topics
from tests.conftest import RUN_ID
from tests.e2e.processes import ServiceProcess, launch
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, command, of_type

pytestmark = pytest.mark.e2e

PORTS = {"offer_service": 18201, "messaging_service": 18202, "notification_service": 18203}


@pytest.fixture(scope="module")
async def system(
    infra: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, ServiceProcess]]:
    logs = tmp_path_factory.mktemp("e2e-logs")
    services = {name: await launch(name, port, infra, logs, RUN_ID) for name, port in PORTS.items()}
    try:
        for service in services.values():
            await asyncio.to_thread(service.wait_healthy)
        yield services
    finally:
        for service in services.values():
            service.stop()


def get_json(url: str, actor: str | None = None) -> Any:
    """A read API's answer, read on behalf of ``actor`` (every read names its reader)."""
    headers = {"X-Actor-Id": actor} if actor else {}
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=5
    ) as response:
        return json.load(response)


async def test_health_of_every_service(system: dict[str, ServiceProcess]) -> None:
    for service in system.values():
        health = await asyncio.to_thread(get_json, f"{service.url}/health")
        assert health == {"status": "ok", "kafka": "ok", "mongodb": "ok"}


async def test_an_offer_travels_through_the_whole_system(
    system: dict[str, ServiceProcess], infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    extend = parties.extend()
    await producer.send(topics.OFFERS_COMMANDS, extend, parties.offer_id)
    [extended] = await probe.wait_for(of_type("OfferExtended", offer_id=parties.offer_id))
    [received] = await probe.wait_for(
        of_type("NotificationCreated", recipient_id=parties.freelancer_id, kind="offer_received")
    )
    assert received.value["source_event_id"] == extended.value["event_id"]

    hello = command(
        "PostMessage",
        parties.freelancer_id,
        offer_id=parties.offer_id,
        message_id="m-1",
        text="Could we do 50/h?",
    )
    await producer.send(topics.NEGOTIATIONS_COMMANDS, hello, parties.offer_id)
    await probe.wait_for(of_type("MessagePosted", offer_id=parties.offer_id))
    await probe.wait_for(
        of_type("NotificationCreated", recipient_id=parties.client_id, kind="new_message")
    )

    accept = command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=1)
    await producer.send(topics.OFFERS_COMMANDS, accept, parties.offer_id)
    await probe.wait_for(of_type("ThreadClosed", offer_id=parties.offer_id, reason="accepted"))
    # Each party's notification is its own record; wait for both before reading an inbox.
    for party in (parties.client_id, parties.freelancer_id):
        await probe.wait_for(
            of_type("NotificationCreated", recipient_id=party, kind="contract_active")
        )

    # What the services stored, read straight from the database.
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    try:
        offers = mongo[system["offer_service"].env["MONGODB_DATABASE"]]["offers"]
        stored = await offers.find_one({"_id": parties.offer_id})
        assert stored is not None and stored["status"] == "accepted"
        # Nothing left to publish: what a batch published stays in the outbox, marked by the
        # record that wrote it (services.runtime.outbox), and every event of it is out.
        assert "outbox_pending" not in stored
        seen = {s.value.get("event_id") for s in probe.seen if isinstance(s.value, dict)}
        events = [e for e in stored["outbox"] if not topics.is_internal(e["topic"])]
        assert [e["event_id"] for e in events if e["event_id"] not in seen] == []
    finally:
        await mongo.close()

    offer_url = f"{system['offer_service'].url}/offers/{parties.offer_id}"
    offer = await asyncio.to_thread(get_json, offer_url, parties.client_id)
    assert offer["status"] == "accepted"
    thread_url = f"{system['messaging_service'].url}/threads/{parties.offer_id}/messages"
    thread = await asyncio.to_thread(get_json, thread_url, parties.freelancer_id)
    assert [m["text"] for m in thread["items"]] == ["Could we do 50/h?"]
    inbox_url = (
        f"{system['notification_service'].url}/notifications?recipient_id={parties.freelancer_id}"
    )
    inbox = await asyncio.to_thread(get_json, inbox_url, parties.freelancer_id)
    assert {"offer_received", "contract_active"} <= {n["kind"] for n in inbox["items"]}


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_every_service_counts_what_it_handled_in_prometheus_format(
    system: dict[str, ServiceProcess], producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await producer.send(topics.OFFERS_COMMANDS, parties.extend(), parties.offer_id)
    post = command(
        "PostMessage", parties.client_id, offer_id=parties.offer_id, message_id="m-1", text="Hi"
    )
    await producer.send(topics.NEGOTIATIONS_COMMANDS, post, parties.offer_id)
    await probe.wait_for(
        of_type("NotificationCreated", recipient_id=parties.freelancer_id, kind="new_message")
    )
    handled = {
        "offer_service": 'type="ExtendOffer"',
        "messaging_service": 'type="PostMessage"',
        "notification_service": 'type="MessagePosted"',
    }
    for name, service in system.items():
        page = await asyncio.to_thread(get_text, f"{service.url}/metrics")
        # One line per outcome, in the order the outcomes first happened: commands the service
        # parked or refused (for offers of other tests) may come before the handled line. A
        # PostMessage that came before its thread's OfferExtended (two topics, no order
        # between them) waited for it and was handled on its release.
        counted = {
            line.split('outcome="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in page.splitlines()
            if line.startswith("offers_messages_total{") and handled[name] in line
        }
        assert counted.get("handled", 0) + counted.get("released", 0) >= 1, (name, page)
        assert "offers_outbox_backlog{" in page and "offers_handling_seconds_bucket{" in page
