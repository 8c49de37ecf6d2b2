"""notification_service's handlers, every path, on in-memory documents; the source events
come from offer_service's and messaging_service's own handlers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from contracts import topics
from contracts.internal import SendReminder
from services.notification_service.handlers import notification_id_for, reminder_id_for
from services.runtime.due import due_bucket
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


async def projection(notifications: Harness, offer_id: str) -> dict[str, Any]:
    stored = await notifications.handlers.store.offers.get(offer_id)
    assert stored is not None
    document: dict[str, Any] = stored.document
    return document


def leads(projected: dict[str, Any]) -> list[int]:
    return [plan["lead_seconds"] for plan in projected["reminders"]]


async def ask_for_reminder(notifications: Harness, p: Parties, command_id: str) -> None:
    """What the sweep sends (services.notification_service.app.send)."""
    projected = await projection(notifications, p.offer_id)
    reminder_id = reminder_id_for(p.offer_id, projected["version"], leads(projected)[0])
    ask = SendReminder(
        command_id=command_id,
        offer_id=p.offer_id,
        reminder_id=reminder_id,
        version=projected["version"],
    )
    await notifications.send(notifications.table.internal_topic, ask, key=p.offer_id)
    await notifications.settle()


async def test_a_due_reminder_is_sent_once_by_its_offers_handler() -> None:
    p = Parties()
    _, notifications = await offer_extended(p)
    scheduled = await projection(notifications, p.offer_id)
    assert leads(scheduled) == [72 * 3600, 24 * 3600]  # earliest first
    assert scheduled["due_bucket"] == due_bucket(scheduled["reminders"][0]["due_at"])
    notifications.clock.advance(timedelta(days=27, hours=1).total_seconds())
    for command_id in ("ask-1", "ask-2"):  # both instances' sweeps ask
        await ask_for_reminder(notifications, p, command_id)
    [reminder] = notifications.out("NotificationCreated", kind="offer_expiring")
    assert reminder["recipient_id"] == p.freelancer_id and "3 days" in reminder["body"]
    left = await projection(notifications, p.offer_id)
    assert leads(left) == [24 * 3600]
    assert left["due_bucket"] == due_bucket(left["reminders"][0]["due_at"])


async def test_reminders_all_due_at_once_send_only_the_one_nearest_to_expiry() -> None:
    p = Parties()
    _, notifications = await offer_extended(p)
    notifications.clock.advance(timedelta(days=29, hours=12).total_seconds())  # down 2.5 days
    await ask_for_reminder(notifications, p, "ask-1")
    [reminder] = notifications.out("NotificationCreated", kind="offer_expiring")
    assert "expires in 12 hours" in reminder["body"]
    late = reminder_id_for(p.offer_id, 1, 24 * 3600)  # not the 3-day one, long past
    assert reminder["notification_id"] == notification_id_for(late, p.freelancer_id)
    left = await projection(notifications, p.offer_id)
    assert left["reminders"] == [] and left["due_bucket"] is None


async def test_a_reminder_of_an_offer_closed_meanwhile_is_not_sent() -> None:
    p = Parties()
    offers, notifications = await offer_extended(p)
    withdraw = command("WithdrawOffer", p.client_id, offer_id=p.offer_id)
    await offers.send(topics.OFFERS_COMMANDS, withdraw, key=p.offer_id)
    await forward(offers, notifications, "OfferWithdrawn")
    await notifications.settle()
    closed = await projection(notifications, p.offer_id)
    assert closed["reminders"] == [] and closed["due_bucket"] is None
    reminder_id = reminder_id_for(p.offer_id, 1, 24 * 3600)
    ask = SendReminder(command_id="ask-2", offer_id=p.offer_id, reminder_id=reminder_id, version=1)
    notifications.clock.advance(timedelta(days=29, hours=1).total_seconds())
    await notifications.send(notifications.table.internal_topic, ask, key=p.offer_id)
    await notifications.settle()
    assert notifications.out("NotificationCreated", kind="offer_expiring") == []


async def test_a_reminder_due_after_the_offer_expired_by_the_clock_is_dropped_not_sent() -> None:
    p = Parties()
    _, notifications = await offer_extended(p)
    notifications.clock.advance(timedelta(days=30, minutes=1).total_seconds())  # no OfferExpired
    await ask_for_reminder(notifications, p, "ask-1")
    assert notifications.out("NotificationCreated", kind="offer_expiring") == []
    dropped = await projection(notifications, p.offer_id)
    assert dropped["reminders"] == [] and dropped["due_bucket"] is None  # out of its bucket


async def test_a_change_replaces_the_reminders_of_the_older_version() -> None:
    p = Parties()
    offers, notifications = await offer_extended(p)
    [extended_event] = offers.out("OfferExtended")
    notifications.clock.advance(timedelta(days=1).total_seconds())
    change = command(
        "ChangeOffer",
        p.client_id,
        offer_id=p.offer_id,
        terms={**extended_event["terms"], "hourly_rate": "50.00"},
    )
    offers.clock.advance(timedelta(days=1).total_seconds())
    await offers.send(topics.OFFERS_COMMANDS, change, key=p.offer_id)
    await forward(offers, notifications, "OfferChanged")
    await notifications.settle()
    [changed_event] = offers.out("OfferChanged")
    changed_projection = await projection(notifications, p.offer_id)
    assert changed_projection["version"] == 2
    assert [plan["due_at"] for plan in changed_projection["reminders"]] == [
        datetime.fromisoformat(changed_event["expires_at"]) - timedelta(seconds=lead)
        for lead in (72 * 3600, 24 * 3600)
    ]
    changed = notifications.one("NotificationCreated", kind="offer_changed")
    assert "was $45.00/h" in changed["body"]
