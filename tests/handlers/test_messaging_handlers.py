"""messaging_service's handlers, every path, on in-memory documents; the offer events come
from offer_service's own handlers, so they are the real ones."""

from __future__ import annotations

from typing import Any

from contracts import topics
from tests.kit import Parties, command

from .harness import WAIT, Harness
from .services import ThreadStorage, forward, messaging_service, offer_service


def post(p: Parties, sender: str, message_id: str, text: str = "hello") -> dict[str, Any]:
    return command("PostMessage", sender, offer_id=p.offer_id, message_id=message_id, text=text)


def propose(p: Parties, message_id: str, **changes: Any) -> dict[str, Any]:
    return command(
        "ProposeTerms",
        p.freelancer_id,
        offer_id=p.offer_id,
        message_id=message_id,
        changes=changes or {"hourly_rate": "55.00"},
        text="A little more, please",
    )


async def extended(p: Parties) -> tuple[Harness, Harness]:
    offers, messaging = await offer_service(), await messaging_service()
    await offers.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await forward(offers, messaging, "OfferExtended")
    return offers, messaging


async def thread_of(messaging: Harness, offer_id: str) -> list[dict[str, Any]]:
    store = messaging.handlers.store
    messages = await store.messages.find("offer_id", offer_id)
    return sorted(messages, key=lambda m: m["seq"])


async def test_a_message_is_stored_and_published_once_however_often_it_comes() -> None:
    p = Parties()
    _, messaging = await extended(p)
    message = post(p, p.freelancer_id, "m-1")
    for _ in range(3):
        await messaging.send(topics.NEGOTIATIONS_COMMANDS, message, key=p.offer_id)
    assert messaging.one("MessagePosted", message_id="m-1")["sender_id"] == p.freelancer_id
    assert [m["message_id"] for m in await thread_of(messaging, p.offer_id)] == ["m-1"]


async def test_the_same_message_id_under_a_new_command_id_is_not_repeated() -> None:
    """Nor numbered again, nor refused once the thread has closed: it is posted already."""
    p = Parties()
    offers, messaging = await extended(p)
    for message_id in ("m-1", "m-1", "m-2"):
        await messaging.send(
            topics.NEGOTIATIONS_COMMANDS, post(p, p.client_id, message_id), key=p.offer_id
        )
    assert len(messaging.out("MessagePosted")) == 2
    thread = await thread_of(messaging, p.offer_id)
    # Numbered by their commands' places (the repeat, the second command, took none).
    assert [(m["message_id"], m["seq"]) for m in thread] == [("m-1", 1), ("m-2", 3)]
    withdraw = command("WithdrawOffer", p.client_id, offer_id=p.offer_id)
    await offers.send(topics.OFFERS_COMMANDS, withdraw, key=p.offer_id)
    await forward(offers, messaging, "OfferWithdrawn")
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, post(p, p.client_id, "m-1"), key=p.offer_id)
    assert messaging.out("CommandRejected") == []


async def test_messages_are_numbered_in_the_order_they_came() -> None:
    p = Parties()
    _, messaging = await extended(p)
    for n in range(1, 5):
        sender = p.client_id if n % 2 else p.freelancer_id
        await messaging.send(
            topics.NEGOTIATIONS_COMMANDS, post(p, sender, f"m-{n}"), key=p.offer_id
        )
    thread = await thread_of(messaging, p.offer_id)
    assert [m["message_id"] for m in thread] == ["m-1", "m-2", "m-3", "m-4"]
    assert [m["seq"] for m in thread] == [1, 2, 3, 4]


async def test_only_the_parties_write_and_only_while_the_offer_is_open() -> None:
    p = Parties()
    offers, messaging = await extended(p)
    stranger = post(p, "someone-else", "m-1")
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, stranger, key=p.offer_id)
    assert messaging.one("CommandRejected")["code"] == "not_authorized"
    decline = command("DeclineOffer", p.freelancer_id, offer_id=p.offer_id)
    await offers.send(topics.OFFERS_COMMANDS, decline, key=p.offer_id)
    await forward(offers, messaging, "OfferDeclined")
    late = post(p, p.client_id, "m-2")
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, late, key=p.offer_id)
    rejected = messaging.one("CommandRejected", command_id=late["command_id"])
    assert rejected["code"] == "thread_closed" and rejected["status"] == "declined"
    assert messaging.one("ThreadClosed")["reason"] == "declined"


async def test_messages_for_an_offer_not_known_yet_wait_for_it_in_order() -> None:
    p, other = Parties(), Parties()
    offers, messaging = await offer_service(), await messaging_service()
    await offers.send(topics.OFFERS_COMMANDS, other.extend(), key=other.offer_id)
    await forward(offers, messaging, "OfferExtended", offer_id=other.offer_id)
    for n in (1, 2, 3):
        await messaging.send(
            topics.NEGOTIATIONS_COMMANDS, post(p, p.freelancer_id, f"m-{n}"), key=p.offer_id
        )
    # Another offer's thread goes on meanwhile: waiting blocks nobody else.
    await messaging.send(
        topics.NEGOTIATIONS_COMMANDS, post(other, other.client_id, "x-1"), key=other.offer_id
    )
    assert [m["message_id"] for m in messaging.out("MessagePosted")] == ["x-1"]
    assert messaging.outcome_count("parked") == 3
    await offers.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await forward(offers, messaging, "OfferExtended", offer_id=p.offer_id)
    assert [m["message_id"] for m in messaging.out("MessagePosted", offer_id=p.offer_id)] == [
        "m-1",
        "m-2",
        "m-3",
    ]
    assert messaging.storage.parked.documents == {}


async def test_a_message_for_an_offer_that_never_comes_is_refused_once_after_the_wait() -> None:
    p = Parties()
    messaging = await messaging_service()
    message = post(p, p.freelancer_id, "m-1")
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, message, key=p.offer_id)
    messaging.clock.advance(WAIT.total_seconds() - 1)
    await messaging.sweep_parked()
    assert messaging.out("CommandRejected") == []
    messaging.clock.advance(2)
    await messaging.sweep_parked()
    await messaging.sweep_parked()
    rejected = messaging.one("CommandRejected", command_id=message["command_id"])
    assert rejected["code"] == "unknown_offer"
    assert messaging.outcome_count("refused_after_wait") == 1


async def test_a_wait_run_out_while_the_offers_events_are_still_unread_refuses_nothing() -> None:
    """A backlog on offers.events (a restart, a slow start): the offer may be in it."""
    p = Parties()
    offers, messaging = await offer_service(), await messaging_service()
    await messaging.send(
        topics.NEGOTIATIONS_COMMANDS, post(p, p.freelancer_id, "m-1"), key=p.offer_id
    )
    messaging.highwater[(topics.OFFERS_EVENTS, 0)] = 1  # one event there, not read yet
    messaging.clock.advance(WAIT.total_seconds() + 1)
    await messaging.sweep_parked()
    assert messaging.out("CommandRejected") == []
    await offers.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await forward(offers, messaging, "OfferExtended")
    assert len(messaging.out("MessagePosted")) == 1


async def test_a_wait_run_out_refuses_when_offers_events_were_all_handled_before_the_start() -> (
    None
):
    """A service started at the end of a busy offers.events reads nothing from it: the
    group's committed offset, not a record read here, says the offer is not in it."""
    p = Parties()
    messaging = await messaging_service()
    for text in ("m-1", "m-2"):
        await messaging.send(
            topics.NEGOTIATIONS_COMMANDS, post(p, p.freelancer_id, text), key=p.offer_id
        )
    messaging.highwater[(topics.OFFERS_EVENTS, 0)] = 7  # written before this instance read
    messaging.clock.advance(WAIT.total_seconds() + 1)
    await messaging.sweep_parked()
    assert messaging.out("CommandRejected") == []  # 7 records not known to be handled
    messaging.committed[(topics.OFFERS_EVENTS, 0)] = 7  # the group had handled all seven
    asked = messaging.partitions.committed_asked
    messaging.clock.advance(2)
    await messaging.sweep_parked()
    await messaging.sweep_parked()
    rejected = messaging.out("CommandRejected")
    assert [r["code"] for r in rejected] == ["unknown_offer", "unknown_offer"]
    # Known once, for both: what the group had handled is not asked of the broker again.
    assert messaging.partitions.committed_asked == asked + 1


async def test_parked_messages_survive_a_restart() -> None:
    p, storage = Parties(), ThreadStorage()
    before = await messaging_service(storage)
    await before.send(topics.NEGOTIATIONS_COMMANDS, post(p, p.freelancer_id, "m-1"), key=p.offer_id)
    after = await messaging_service(storage, clock=before.clock, broker=before.broker)
    offers = await offer_service()
    await offers.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await forward(offers, after, "OfferExtended")
    assert len(after.out("MessagePosted")) == 1


async def test_a_message_behind_a_parked_one_waits_behind_it_even_once_the_offer_is_known() -> None:
    """As after a crash between storing the thread and releasing its parked messages: the
    next message must not overtake them."""
    p = Parties()
    offers, messaging = await offer_service(), await messaging_service()
    await messaging.send(
        topics.NEGOTIATIONS_COMMANDS, post(p, p.freelancer_id, "m-1"), key=p.offer_id
    )
    await offers.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    # The thread is stored behind Records' back: no release happened.
    [extended_event] = [e for e in offers.broker.published if e.type == "OfferExtended"]
    row = messaging.table.routes[topics.OFFERS_EVENTS]
    await row.handle(messaging.handlers, row.adapter.validate_json(extended_event.payload))
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, post(p, p.client_id, "m-2"), key=p.offer_id)
    assert [m["message_id"] for m in messaging.out("MessagePosted")] == ["m-1", "m-2"]


async def test_a_proposal_and_the_offer_change_that_answers_it_are_linked_in_either_order() -> None:
    p = Parties()
    offers, messaging = await extended(p)
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, propose(p, "m-1"), key=p.offer_id)
    proposed = messaging.one("TermsProposed", message_id="m-1")
    assert proposed["differences"][0]["field"] == "hourly_rate"
    change = command(
        "ChangeOffer",
        p.client_id,
        offer_id=p.offer_id,
        terms={**_terms(offers, p), "hourly_rate": "55.00"},
        in_response_to="m-1",
    )
    await offers.send(topics.OFFERS_COMMANDS, change, key=p.offer_id)
    await forward(offers, messaging, "OfferChanged")
    thread = await messaging.handlers.store.threads.get(p.offer_id)
    assert thread is not None and thread.value.answered_by("m-1") == 2
    # The answer redelivered, or a later one, keeps the first version that answered.
    await forward(offers, messaging, "OfferChanged")
    thread = await messaging.handlers.store.threads.get(p.offer_id)
    assert thread is not None and thread.value.answers == (("m-1", 2),)


async def test_offer_events_out_of_order_close_the_thread_once() -> None:
    p = Parties()
    offers, messaging = await offer_service(), await messaging_service()
    await offers.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    accept = command("AcceptOffer", p.freelancer_id, offer_id=p.offer_id, version=1)
    await offers.send(topics.OFFERS_COMMANDS, accept, key=p.offer_id)
    await forward(offers, messaging, "OfferAccepted")  # before the OfferExtended
    await forward(offers, messaging, "OfferExtended")
    await forward(offers, messaging, "OfferAccepted")  # and again
    assert messaging.one("ThreadClosed")["reason"] == "accepted"
    thread = await messaging.handlers.store.threads.get(p.offer_id)
    assert thread is not None and thread.value.closed and thread.value.terms is not None


def _terms(offers: Harness, p: Parties) -> dict[str, Any]:
    [extended_event] = offers.out("OfferExtended", offer_id=p.offer_id)
    terms: dict[str, Any] = extended_event["terms"]
    return terms
