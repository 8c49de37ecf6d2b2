"""The positions the pushed streams are built on, given by each stream's one writer: a
thread numbers its messages and then its ThreadClosed, an inbox its notifications; each
event carries its number on the wire, and what the database keeps of it is the event as
published (services.runtime.streams)."""

from __future__ import annotations

from typing import Any

from contracts import topics
from services.messaging_service.domain import STREAM_END
from services.messaging_service.store import thread_from_document, thread_to_document
from services.messaging_service.stream import closed_item, message_item
from services.notification_service.stream import notification_item
from services.runtime.outbox import STREAM_ID_HEADER, OutboxEntry
from tests.kit import Parties, command

from .harness import Harness
from .services import forward
from .test_messaging_handlers import extended, post, propose, thread_of
from .test_notification_handlers import offer_extended


def published(service: Harness, type_: str) -> list[OutboxEntry]:
    return [entry for entry in service.broker.published if entry.type == type_]


async def negotiated_then_withdrawn(p: Parties) -> tuple[Harness, Harness]:
    offers, messaging = await extended(p)
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, post(p, p.client_id, "m-1"), key=p.offer_id)
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, propose(p, "m-2"), key=p.offer_id)
    withdraw = command("WithdrawOffer", p.client_id, offer_id=p.offer_id)
    await offers.send(topics.OFFERS_COMMANDS, withdraw, key=p.offer_id)
    await forward(offers, messaging, "OfferWithdrawn")
    return offers, messaging


async def test_a_thread_numbers_its_messages_then_its_closing_and_says_so_on_the_wire() -> None:
    """Its messages by their commands' places in negotiations.commands (the harness's has
    one partition), its closing as the end of the stream."""
    p = Parties()
    _, messaging = await negotiated_then_withdrawn(p)
    entries = [
        *published(messaging, "MessagePosted"),
        *published(messaging, "TermsProposed"),
        *published(messaging, "ThreadClosed"),
    ]
    assert [(e.type, e.stream_id) for e in entries] == [
        ("MessagePosted", "1"),
        ("TermsProposed", "2"),
        ("ThreadClosed", str(STREAM_END)),
    ]
    assert all(e.headers()[STREAM_ID_HEADER] == e.stream_id for e in entries)


async def test_the_stored_items_are_the_events_as_published() -> None:
    p = Parties()
    _, messaging = await negotiated_then_withdrawn(p)
    wire = {e.stream_id: e.payload for e in messaging.broker.published if e.stream_id}
    stored = [message_item(m) for m in await thread_of(messaging, p.offer_id)]
    thread = await messaging.handlers.store.threads.documents.get(p.offer_id)
    closed = closed_item(thread)
    assert closed is not None
    assert {str(i.position): i.data for i in [*stored, closed]} == wire


async def test_threads_closed_before_the_streams_give_their_closing_a_number() -> None:
    """Threads written before this version have no ThreadClosed number nor cause: the
    closing comes after the last message."""
    p = Parties()
    _, messaging = await negotiated_then_withdrawn(p)
    thread: dict[str, Any] = await messaging.handlers.store.threads.documents.get(p.offer_id)
    legacy_thread = {k: v for k, v in thread.items() if k not in ("closed_seq", "closed_by")}
    legacy_thread["last_seq"] = 2  # before, closing did not take a number
    closed = closed_item(legacy_thread)
    assert closed is not None and closed.position == 3
    assert closed.type == "ThreadClosed"


def test_a_thread_document_keeps_the_closing_number_and_cause() -> None:
    document = {
        "offer_id": "o-1",
        "client_id": "c",
        "freelancer_id": "f",
        "status": "declined",
        "version": 1,
        "last_seq": 4,
        "closed_seq": 4,
        "closed_by": "e-9",
    }
    thread = thread_from_document(document)
    assert (thread.closed_seq, thread.closed_by) == (4, "e-9")
    assert thread_to_document(thread)["closed_seq"] == 4


async def test_an_inbox_numbers_its_notifications_by_their_notify_s_place_once_each() -> None:
    p, q = Parties(), Parties()
    offers, notifications = await offer_extended(p)
    # A second offer to the same freelancer, a third to another one.
    second = Parties(freelancer_id=p.freelancer_id)
    for parties in (second, q):
        await offers.send(topics.OFFERS_COMMANDS, parties.extend(), key=parties.offer_id)
        await forward(offers, notifications, "OfferExtended")
        await notifications.settle()
    [ask] = [e for e in notifications.broker.published if e.type == "Notify"][:1]
    await notifications.send(ask.topic, ask.payload.encode(), key=ask.key)  # asked again
    numbered = [(e.key, e.stream_id) for e in published(notifications, "NotificationCreated")]
    # The harness's internal topic has one partition: the Notifies are its records 1, 2, 3;
    # the one asked again (record 4) finds its notification stored under its number.
    assert numbered == [(p.freelancer_id, "1"), (p.freelancer_id, "2"), (q.freelancer_id, "3")]
    assert await notifications.handlers.store.inboxes.documents.get(p.freelancer_id) is None
    stored = await notifications.handlers.store.notifications.find("recipient_id", p.freelancer_id)
    wire = {
        e.stream_id: e.payload
        for e in published(notifications, "NotificationCreated")
        if e.key == p.freelancer_id
    }
    items = sorted((i.position, i.data) for i in map(notification_item, stored))
    assert items == [(1, wire["1"]), (2, wire["2"])]


async def test_an_inbox_counted_before_numbers_on_from_its_counter_while_it_is_ahead() -> None:
    """Inboxes written before numbering by place counted their notifications: the next
    number is above the count, and the counter moves on while it is ahead of the places."""
    p = Parties()
    offers, notifications = await offer_extended(p)
    inboxes = notifications.handlers.store.inboxes.documents
    await inboxes.insert({"_id": p.freelancer_id, "revision": 1, "last_seq": 10})
    for _ in range(2):
        another = Parties(freelancer_id=p.freelancer_id)
        await offers.send(topics.OFFERS_COMMANDS, another.extend(), key=another.offer_id)
        await forward(offers, notifications, "OfferExtended")
        await notifications.settle()
    numbered = [e.stream_id for e in published(notifications, "NotificationCreated")]
    assert numbered == ["1", "11", "12"]
    stored = await inboxes.get(p.freelancer_id)
    assert stored is not None and stored["last_seq"] == 12


async def test_a_message_leaves_its_thread_unwritten() -> None:
    p = Parties()
    _, messaging = await extended(p)
    threads = messaging.handlers.store.threads.documents
    before = await threads.get(p.offer_id)
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, post(p, p.client_id, "m-1"), key=p.offer_id)
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, propose(p, "m-2"), key=p.offer_id)
    assert len(await thread_of(messaging, p.offer_id)) == 2
    assert await threads.get(p.offer_id) == before


async def test_a_thread_counted_before_numbers_on_from_its_counter_while_it_is_ahead() -> None:
    """Threads written before numbering by place counted their messages: the next number is
    above the count, and the counter moves on while it is ahead of the places."""
    p = Parties()
    _, messaging = await extended(p)
    threads = messaging.handlers.store.threads.documents
    await threads.update(p.offer_id, {"last_seq": 10})
    for message_id in ("m-1", "m-2"):
        await messaging.send(
            topics.NEGOTIATIONS_COMMANDS, post(p, p.client_id, message_id), key=p.offer_id
        )
    assert [m["seq"] for m in await thread_of(messaging, p.offer_id)] == [11, 12]
    stored = await threads.get(p.offer_id)
    assert stored is not None and stored["last_seq"] == 12
