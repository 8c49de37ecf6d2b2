"""notification_service's handlers, every path, on in-memory documents; the source events
come from offer_service's and messaging_service's own handlers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from contracts import topics
from contracts.internal import SendReminder
from services.notification_service.handlers import reminder_id_for
from tests.kit import Parties, command

from .harness import Harness
from .services import forward, messaging_service, notification_service, offer_service


async def inbox(service: Harness, recipient_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await service.handlers.store.notifications.find(
        "recipient_id", recipient_id
    )
    return found


async def offer_extended(p: Parties) -> tuple[Harness, Harness]:
    offers, notifications = await offer_service(), await notification_service()
    await offers.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await forward(offers, notifications, "OfferExtended")
    await notifications.settle()  # the Notify it asked the freelancer's inbox for
    return offers, notifications


async def test_an_offer_event_notifies_its_recipient_once_however_often_it_comes() -> None:
    p = Parties()
    offers, notifications = await offer_extended(p)
    await forward(offers, notifications, "OfferExtended")  # redelivered
    await notifications.settle()
    created = notifications.one("NotificationCreated", recipient_id=p.freelancer_id)
    assert created["kind"] == "offer_received"
    assert [n["notification_id"] for n in await inbox(notifications, p.freelancer_id)] == [
        created["notification_id"]
    ]


async def test_a_notify_asked_for_twice_creates_one_notification() -> None:
    p = Parties()
    _, notifications = await offer_extended(p)
    [ask] = [e for e in notifications.broker.published if e.type == "Notify"]
    await notifications.send(ask.topic, ask.payload.encode(), key=ask.key)
    assert len(notifications.out("NotificationCreated")) == 1


async def test_a_message_for_an_offer_not_projected_yet_is_notified_once_it_is() -> None:
    p = Parties()
    offers, messaging = await offer_service(), await messaging_service()
    notifications = await notification_service()
    await offers.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await forward(offers, messaging, "OfferExtended")
    post = command(
        "PostMessage", p.client_id, offer_id=p.offer_id, message_id="m-1", text="Hi there"
    )
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, post, key=p.offer_id)
    await forward(messaging, notifications, "MessagePosted")  # before the offer's events
    notifications.clock.advance(3600)
    await notifications.sweep_parked()  # an event has no deadline: it waits on
    await notifications.settle()
    assert notifications.out("NotificationCreated") == []
    await forward(offers, notifications, "OfferExtended")
    await notifications.settle()
    message = notifications.one("NotificationCreated", kind="new_message")
    assert message["recipient_id"] == p.freelancer_id  # the other party, known from the offer
    assert len(notifications.out("NotificationCreated")) == 2  # and the offer_received


async def test_only_the_recipient_marks_their_notifications_read() -> None:
    p = Parties()
    _, notifications = await offer_extended(p)
    [notification] = await inbox(notifications, p.freelancer_id)
    ids = [notification["notification_id"]]
    foreign = command(
        "MarkNotificationsRead", p.client_id, recipient_id=p.freelancer_id, notification_ids=ids
    )
    await notifications.send(topics.NOTIFICATIONS_COMMANDS, foreign, key=p.freelancer_id)
    assert notifications.one("CommandRejected")["code"] == "not_authorized"
    mine = command(
        "MarkNotificationsRead",
        p.freelancer_id,
        recipient_id=p.freelancer_id,
        notification_ids=ids,
    )
    await notifications.send(topics.NOTIFICATIONS_COMMANDS, mine, key=p.freelancer_id)
    [read] = await inbox(notifications, p.freelancer_id)
    assert read["read"] is True


async def test_a_read_mark_is_not_lost_to_a_later_publish_of_the_same_notification() -> None:
    """The lost write of the old design: a relay clearing the outbox after the mark."""
    p = Parties()
    _, notifications = await offer_extended(p)
    [notification] = await inbox(notifications, p.freelancer_id)
    mine = command(
        "MarkNotificationsRead",
        p.freelancer_id,
        recipient_id=p.freelancer_id,
        notification_ids=[notification["notification_id"]],
    )
    await notifications.send(topics.NOTIFICATIONS_COMMANDS, mine, key=p.freelancer_id)
    [ask] = [e for e in notifications.broker.published if e.type == "Notify"]
    await notifications.send(ask.topic, ask.payload.encode(), key=ask.key)  # asked again
    [still] = await inbox(notifications, p.freelancer_id)
    assert still["read"] is True


async def test_a_due_reminder_is_sent_once_by_its_offers_handler() -> None:
    p = Parties()
    _, notifications = await offer_extended(p)
    reminders = await notifications.handlers.store.reminders.find("offer_id", p.offer_id)
    assert sorted(r["lead_seconds"] for r in reminders) == [24 * 3600, 72 * 3600]
    reminder_id = reminder_id_for(p.offer_id, 1, 72 * 3600)
    ask = SendReminder(command_id="ask-1", offer_id=p.offer_id, reminder_id=reminder_id, version=1)
    notifications.clock.advance(timedelta(days=27, hours=1).total_seconds())
    for _ in range(2):  # both instances' sweeps ask
        await notifications.send(notifications.table.internal_topic, ask, key=p.offer_id)
    await notifications.settle()
    [reminder] = notifications.out("NotificationCreated", kind="offer_expiring")
    assert reminder["recipient_id"] == p.freelancer_id and "3 days" in reminder["body"]
    stored = await notifications.handlers.store.reminders.get(reminder_id)
    assert stored is not None and stored["state"] == "sent" and "due_bucket" not in stored


async def test_a_reminder_of_an_offer_closed_meanwhile_is_cancelled_not_sent() -> None:
    p = Parties()
    offers, notifications = await offer_extended(p)
    withdraw = command("WithdrawOffer", p.client_id, offer_id=p.offer_id)
    await offers.send(topics.OFFERS_COMMANDS, withdraw, key=p.offer_id)
    await forward(offers, notifications, "OfferWithdrawn")
    await notifications.settle()
    reminders = await notifications.handlers.store.reminders.find("offer_id", p.offer_id)
    assert {r["state"] for r in reminders} == {"cancelled"}
    reminder_id = reminder_id_for(p.offer_id, 1, 24 * 3600)
    ask = SendReminder(command_id="ask-2", offer_id=p.offer_id, reminder_id=reminder_id, version=1)
    await notifications.send(notifications.table.internal_topic, ask, key=p.offer_id)
    await notifications.settle()
    assert notifications.out("NotificationCreated", kind="offer_expiring") == []


async def test_a_change_replaces_the_reminders_of_the_older_version() -> None:
    p = Parties()
    offers, notifications = await offer_extended(p)
    [extended_event] = offers.out("OfferExtended")
    change = command(
        "ChangeOffer",
        p.client_id,
        offer_id=p.offer_id,
        terms={**extended_event["terms"], "hourly_rate": "50.00"},
    )
    await offers.send(topics.OFFERS_COMMANDS, change, key=p.offer_id)
    await forward(offers, notifications, "OfferChanged")
    await notifications.settle()
    reminders = await notifications.handlers.store.reminders.find("offer_id", p.offer_id)
    states = {(r["version"], r["state"]) for r in reminders}
    assert states == {(1, "cancelled"), (2, "pending")}
    changed = notifications.one("NotificationCreated", kind="offer_changed")
    assert "was $45.00/h" in changed["body"]
