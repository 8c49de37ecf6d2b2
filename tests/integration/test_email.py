"""Email over real SMTP: offer_service and notification_service in this process, on the real
Kafka and FerretDB, sending to the mail catcher infra/infra.py started (SMTP_URL); what it
received is read back from its Maildir, as `offers show mail` reads it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from contracts import format_utc, topics
from services.mailcatcher import read_mail, text_of
from services.notification_service.app import create_app as notification_app
from services.notification_service.email import EmailSettings
from services.offer_service.app import create_app as offer_app
from services.runtime.clock import utc_now
from services.runtime.config import Settings
from tests.conftest import fresh_settings
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, as_, command, new_id, of_type, running
from tests.mail import infra_mail_dir, infra_smtp_url, wait_for_mail

pytestmark = pytest.mark.integration

DIGEST_SECONDS = 4


@dataclass
class Platform:
    notifications: httpx.AsyncClient
    settings: Settings


@pytest.fixture(scope="module")
async def platform(infra: Endpoints) -> AsyncIterator[Platform]:
    offers = await fresh_settings(infra, "offer_service")
    notifications = await fresh_settings(infra, "notification_service")
    email = EmailSettings(
        smtp_url=infra_smtp_url(), digest_seconds=DIGEST_SECONDS, poll_seconds=0.2
    )
    async with (
        running(offer_app(offers)),
        running(notification_app(notifications, email)) as client,
    ):
        yield Platform(client, notifications)


def address(name: str) -> str:
    """An address no other test (or earlier run) has used: the catcher keeps everything."""
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


async def choose(
    producer: Producer, probe: Probe, recipient_id: str, email: str | None, **fields: Any
) -> None:
    chosen = command(
        "SetNotificationPreferences",
        recipient_id,
        recipient_id=recipient_id,
        email=email,
        **{"email_kinds": ["offer_received"], **fields},
    )
    await producer.send(topics.NOTIFICATIONS_COMMANDS, chosen, key=recipient_id)
    await probe.wait_for(
        of_type("NotificationPreferencesChanged", causation_id=chosen["command_id"])
    )


async def stored(platform: Platform, notification_id: str) -> dict[str, Any]:
    client = AsyncMongoClient[dict[str, Any]](platform.settings.mongodb_url, tz_aware=True)
    try:
        database = client[platform.settings.database_name]
        for _ in range(100):  # the close goes through the recipient's partition: moments later
            found = await database["notifications"].find_one({"_id": notification_id})
            if found is not None and found.get("email_state") != "waiting":
                break
            await asyncio.sleep(0.1)
        assert found is not None
        send = await database["email_sends"].find_one({"_id": notification_id})
        return {**found, "send": send}
    finally:
        await client.close()


async def test_an_offer_extended_three_times_is_emailed_once(
    platform: Platform, producer: Producer, probe: Probe
) -> None:
    p = Parties()
    bob = address("bob")
    await choose(producer, probe, p.freelancer_id, bob)
    extend = p.extend()
    for _ in range(3):  # a producer's retries
        await producer.send(topics.OFFERS_COMMANDS, extend, key=p.offer_id)
    [created] = await probe.wait_for(of_type("NotificationCreated", recipient_id=p.freelancer_id))
    [mail] = await wait_for_mail(infra_mail_dir(), bob, 1)
    await asyncio.sleep(2)  # time for a second one, were there to be one
    assert len(read_mail(infra_mail_dir(), bob)) == 1
    notification = created.value
    assert mail["Subject"] == notification["title"]
    assert mail["To"] == bob
    assert mail["Message-ID"].startswith("<") and mail["Message-ID"].endswith("@offers.localhost>")
    assert p.freelancer_id in mail["List-Unsubscribe"]
    body = text_of(mail)
    assert notification["body"] in body
    assert f"offer={p.offer_id}" in body
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and p.offer_id in html.get_content()
    kept = await stored(platform, notification["notification_id"])
    assert kept["email_state"] == "sent"
    assert kept["send"]["message_id"] == mail["Message-ID"]
    assert len(probe.matching(of_type("NotificationCreated", recipient_id=p.freelancer_id))) == 1


def posted(p: Parties, text: str) -> dict[str, Any]:
    """A client's chat message, as messaging_service publishes it (not running here)."""
    return {
        "type": "MessagePosted",
        "event_id": new_id("evt"),
        "schema_version": 1,
        "occurred_at": format_utc(utc_now()),
        "causation_id": new_id("cmd"),
        "offer_id": p.offer_id,
        "message_id": new_id("msg"),
        "sender_id": p.client_id,
        "text": text,
        "sent_at": format_utc(utc_now()),
    }


async def test_the_digest_gathers_chat_messages(
    platform: Platform, producer: Producer, probe: Probe
) -> None:
    p = Parties()
    bob = address("bob")
    await choose(producer, probe, p.freelancer_id, bob, email_kinds=["all"])  # digest: chat
    await producer.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    lines = ["Hello Bob", "Are you free next week?", "The brief is attached"]
    for line in lines:
        await producer.send(topics.NEGOTIATIONS_EVENTS, posted(p, line), key=p.offer_id)
    await probe.wait_for(
        of_type("NotificationCreated", recipient_id=p.freelancer_id, kind="new_message"),
        count=len(lines),
    )
    # The offer at once; the chat once its window of DIGEST_SECONDS is over. Three lines in
    # one window make one email; a window boundary between them may make two, never three.
    mails = await wait_for_mail(infra_mail_dir(), bob, 2, within=DIGEST_SECONDS * 3 + 10)
    await asyncio.sleep(DIGEST_SECONDS + 1)
    mails = read_mail(infra_mail_dir(), bob)
    digests = [m for m in mails if "notification" in m["Subject"]]
    singles = [m for m in mails if m["Subject"].startswith("Offer received")]
    assert len(singles) == 1, [m["Subject"] for m in mails]
    assert 1 <= len(digests) <= 2, [m["Subject"] for m in mails]
    gathered = "".join(text_of(m) for m in digests)
    for line in lines:
        assert gathered.count(line) == 1, gathered


async def test_a_permanent_refusal_is_recorded_and_not_retried(
    platform: Platform, producer: Producer, probe: Probe
) -> None:
    p = Parties()
    refused = address("reject-bob")  # the catcher answers 550 for reject-* addresses
    await choose(producer, probe, p.freelancer_id, refused)
    await producer.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    [created] = await probe.wait_for(of_type("NotificationCreated", recipient_id=p.freelancer_id))
    kept = await stored(platform, created.value["notification_id"])
    assert kept["email_state"] == "failed"
    assert kept["send"]["outcome"] == "failed" and kept["send"]["smtp_code"] == 550
    metrics = (await platform.notifications.get("/metrics")).text
    assert "offers_emails_failed_total" in metrics
    assert read_mail(infra_mail_dir(), refused) == []


async def test_a_stranger_cannot_change_someones_preferences(
    platform: Platform, producer: Producer, probe: Probe
) -> None:
    p = Parties()
    await choose(producer, probe, p.freelancer_id, address("bob"))
    forged = command(
        "SetNotificationPreferences",
        p.client_id,
        recipient_id=p.freelancer_id,
        email="mallory@example.com",
        email_kinds=["all"],
    )
    await producer.send(topics.NOTIFICATIONS_COMMANDS, forged, key=p.freelancer_id)
    [refused] = await probe.wait_for(of_type("CommandRejected", command_id=forged["command_id"]))
    assert refused.value["code"] == "not_authorized"
    mine = {"recipient_id": p.freelancer_id}
    response = await platform.notifications.get(
        "/notifications/preferences", params=mine, headers=as_(p.freelancer_id)
    )
    assert response.status_code == 200
    shown = response.json()
    assert shown["email"].startswith("bob-") and shown["email_kinds"] == ["offer_received"]
    assert shown["digest_kinds"] == ["new_message"]
    # And a stranger cannot read them either.
    theirs = await platform.notifications.get(
        "/notifications/preferences", params=mine, headers=as_(p.client_id)
    )
    assert theirs.status_code == 403


async def test_two_instances_send_each_email_once(
    infra: Endpoints, platform: Platform, producer: Producer, probe: Probe
) -> None:
    """Two more instances of notification_service in the same group (three in all, with the
    module's): each sends only for the recipients whose partitions it holds."""
    email = EmailSettings(smtp_url=infra_smtp_url(), poll_seconds=0.1)
    second = notification_app(platform.settings, email)
    third = notification_app(platform.settings, email)
    async with running(second), running(third):
        await asyncio.sleep(8)  # the group shares the partitions out among the three
        people = [Parties() for _ in range(20)]
        addresses = {p.freelancer_id: address("bob") for p in people}
        for p in people:
            await choose(producer, probe, p.freelancer_id, addresses[p.freelancer_id])
        for p in people:
            await producer.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
        for bob in addresses.values():
            await wait_for_mail(infra_mail_dir(), bob, 1)
        await asyncio.sleep(2)
        counts = {bob: len(read_mail(infra_mail_dir(), bob)) for bob in addresses.values()}
        assert set(counts.values()) == {1}, counts
