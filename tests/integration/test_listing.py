"""What is listed is not looked up unless it is there (services.runtime.batch, `Listing`,
loaded once a service's partitions are assigned): a notification to a recipient without an
inbox document costs no read, while a recipient who chose email preferences is listed,
read and emailed; a command is not looked up among the refused ones unless it was refused,
and one refused is still refused once. In a module of its own, each test with a database
of its own, so that the command listener sees that service's commands only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient, monitoring

from contracts import topics
from services.messaging_service.app import create_app as messaging_app
from services.notification_service.app import create_app as notification_app
from services.runtime.documents import Document
from tests.conftest import fresh_settings
from tests.infrastructure import Endpoints
from tests.integration.test_messaging_service import offer_event, post, send_command, send_event
from tests.integration.test_notification_service import extended
from tests.kit import Parties, Probe, Producer, new_id, of_type, running

pytestmark = pytest.mark.integration


class Reads(monitoring.CommandListener):
    """The `_id` reads of one collection in one database, and whether the listing's scan (a
    find with no filter) has come back whole."""

    def __init__(self, database: str, collection: str) -> None:
        self.database = database
        self.collection = collection
        self.read: list[str] = []
        self.scans: set[int] = set()
        self.listed = asyncio.Event()
        self.listening = True  # (a listener cannot be unregistered: it stops recording)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.listening or event.database_name != self.database:
            return
        if event.command_name == "find" and event.command.get("find") == self.collection:
            found = event.command.get("filter", {}).get("_id")
            if isinstance(found, str):
                self.read.append(found)
            elif not event.command.get("filter"):
                self.scans.add(event.request_id)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        # The scan's first reply holds all of a few documents, with no cursor left open.
        if event.request_id in self.scans and event.reply.get("cursor", {}).get("id") == 0:
            self.listed.set()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_recipient_without_an_inbox_is_not_read_and_one_with_preferences_is(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    settings = await fresh_settings(
        infra, "notification_service", database_name=f"test_inbox_listing_{new_id('db')}"
    )
    chose, strangers = Parties(), [Parties() for _ in range(3)]
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongodb_url)
    reads = Reads(settings.database_name, "inboxes")
    monitoring.register(reads)  # for the clients made from now on: the service's own
    try:
        await client[settings.database_name]["inboxes"].insert_one(
            {
                "_id": chose.freelancer_id,
                "revision": 1,
                "email": "bob@example.com",
                "email_kinds": ["all"],
                "digest_kinds": [],
                "chosen_at": datetime(2026, 12, 1, tzinfo=UTC),
                "outbox": [],
            }
        )
        async with running(notification_app(settings)):
            await asyncio.wait_for(reads.listed.wait(), 30)
            for parties in (*strangers, chose):
                await producer.send(topics.OFFERS_EVENTS, extended(parties), key=parties.offer_id)
            for parties in (*strangers, chose):
                await probe.wait_for(
                    of_type("NotificationCreated", recipient_id=parties.freelancer_id)
                )
        stored = client[settings.database_name]["notifications"]
        emailed = await stored.find_one({"recipient_id": chose.freelancer_id})
        assert emailed is not None and emailed["email_to"] == "bob@example.com"
        assert reads.read == [chose.freelancer_id]
    finally:
        reads.listening = False
        await client.drop_database(settings.database_name)
        await client.close()


async def test_a_command_is_looked_up_among_the_refused_only_if_it_was_refused(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    settings = await fresh_settings(
        infra, "messaging_service", database_name=f"test_refusal_listing_{new_id('db')}"
    )
    parties = Parties()
    reads = Reads(settings.database_name, "rejections")
    monitoring.register(reads)
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongodb_url)
    try:
        async with running(messaging_app(settings)):
            await asyncio.wait_for(reads.listed.wait(), 30)
            await send_event(producer, offer_event("OfferExtended", parties))
            messages = [post(parties, parties.client_id, f"hello {n}") for n in range(3)]
            for message in messages:
                await send_command(producer, message, parties.offer_id)
            for message in messages:
                await probe.wait_for(of_type("MessagePosted", causation_id=message["command_id"]))
            assert reads.read == []
            stranger = post(parties, new_id("stranger"))
            for _ in range(2):  # sent again: refused once, found refused the second time
                await send_command(producer, stranger, parties.offer_id)
            await probe.wait_for(of_type("CommandRejected", command_id=stranger["command_id"]))
            await probe.quiet()
        rejected = probe.matching(of_type("CommandRejected", command_id=stranger["command_id"]))
        assert len({seen.value["event_id"] for seen in rejected}) == 1
        assert len(reads.read) == 1  # the second one only: the first was not listed
    finally:
        reads.listening = False
        await client.drop_database(settings.database_name)
        await client.close()
