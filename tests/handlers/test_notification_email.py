"""Email preferences and what a notification keeps of its email, through notification_service's
real table on in-memory documents (the sending itself: tests/integration/test_email.py)."""

from __future__ import annotations

from typing import Any

from contracts import topics
from contracts.internal import CloseEmails
from tests.kit import Parties, command

from .harness import Harness
from .services import forward, notification_service, offer_service


def preferences(recipient_id: str, actor_id: str | None = None, **fields: Any) -> dict[str, Any]:
    chosen = {"email": "bob@example.com", "email_kinds": ["offer_received"], **fields}
    return command(
        "SetNotificationPreferences", actor_id or recipient_id, recipient_id=recipient_id, **chosen
    )


async def choose(service: Harness, recipient_id: str, **fields: Any) -> dict[str, Any]:
    chosen = preferences(recipient_id, **fields)
    await service.send(topics.NOTIFICATIONS_COMMANDS, chosen, key=recipient_id)
    return chosen


async def stored_notifications(service: Harness, recipient_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await service.handlers.store.notifications.find(
        "recipient_id", recipient_id
    )
    return found


async def extend(p: Parties, notifications: Harness) -> None:
    offers = await offer_service()
    await offers.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await forward(offers, notifications, "OfferExtended")
    await notifications.settle()


async def test_a_stranger_cannot_change_someones_preferences() -> None:
    p = Parties()
    notifications = await notification_service()
    forged = preferences(p.freelancer_id, actor_id=p.client_id, email="mallory@example.com")
    await notifications.send(topics.NOTIFICATIONS_COMMANDS, forged, key=p.freelancer_id)
    refused = notifications.one("CommandRejected", command_id=forged["command_id"])
    assert refused["code"] == "not_authorized"
    assert p.freelancer_id in refused["message"]
    assert notifications.out("NotificationPreferencesChanged") == []
    assert await notifications.handlers.store.inboxes.get(p.freelancer_id) is None


async def test_preferences_are_published_once_however_often_the_command_comes() -> None:
    p = Parties()
    notifications = await notification_service()
    chosen = await choose(notifications, p.freelancer_id, email="Bob@Example.COM")
    await notifications.send(topics.NOTIFICATIONS_COMMANDS, chosen, key=p.freelancer_id)
    changed = notifications.one("NotificationPreferencesChanged", recipient_id=p.freelancer_id)
    assert changed["email"] == "Bob@example.com"  # normalized
    assert changed["email_kinds"] == ["offer_received"]
    assert changed["digest_kinds"] == ["new_message"]


async def test_a_chosen_kind_keeps_its_email_with_the_address_of_the_moment() -> None:
    p = Parties()
    notifications = await notification_service()
    await choose(notifications, p.freelancer_id)
    await extend(p, notifications)
    await choose(notifications, p.freelancer_id, email="new-bob@example.com")
    [notification] = await stored_notifications(notifications, p.freelancer_id)
    assert notification["email_state"] == "waiting"
    assert notification["email_to"] == "bob@example.com"  # as it was when notified
    assert notification["email_digest"] is None
    assert notification["email_mode"] == "now"
    assert notification["email_after"] == notification["created_at"]


async def test_kinds_not_chosen_and_a_stopped_address_are_not_emailed() -> None:
    p, q = Parties(), Parties()
    notifications = await notification_service()
    await choose(notifications, p.freelancer_id, email_kinds=["offer_accepted"])
    await choose(notifications, q.freelancer_id, email=None, email_kinds=["all"])
    await extend(p, notifications)
    await extend(q, notifications)
    for recipient in (p.freelancer_id, q.freelancer_id):
        [notification] = await stored_notifications(notifications, recipient)
        assert "email_state" not in notification


async def test_digest_kinds_wait_for_the_end_of_their_window() -> None:
    p = Parties()
    notifications = await notification_service()
    await choose(
        notifications, p.freelancer_id, email_kinds=["all"], digest_kinds=["offer_received"]
    )
    await extend(p, notifications)
    [notification] = await stored_notifications(notifications, p.freelancer_id)
    assert notification["email_state"] == "waiting"
    assert notification["email_digest"].startswith("bob@example.com ")
    assert notification["email_mode"] == "digest"
    assert notification["email_after"] > notification["created_at"]


async def test_the_senders_word_closes_the_email_in_the_recipients_partition() -> None:
    p = Parties()
    notifications = await notification_service()
    await choose(notifications, p.freelancer_id)
    await extend(p, notifications)
    [notification] = await stored_notifications(notifications, p.freelancer_id)
    close = CloseEmails(
        command_id="close-1",
        recipient_id=p.freelancer_id,
        notification_ids=[notification["_id"]],
        outcome="sent",
    )
    await notifications.send(notifications.table.internal_topic, close, key=p.freelancer_id)
    [closed] = await stored_notifications(notifications, p.freelancer_id)
    assert closed["email_state"] == "sent"
