"""What Records makes of any record, whatever the service: one outcome each."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from pydantic import PlainValidator, TypeAdapter

from contracts import topics
from contracts.internal import ExpireOffer
from services.offer_service.app import TABLE as OFFER_TABLE
from services.runtime.service import handles, types_of
from services.runtime.wire import RecordOrigin
from tests.kit import Parties, command

from .harness import Broker
from .services import messaging_service, notification_service, offer_service

LIMIT = 1024  # the dead-letter topic's record limit, in this fake


class SmallDeadLetterTopic(Broker):
    async def dead_letter(self, raw: bytes, origin: RecordOrigin, error: str) -> None:
        if len(raw) > LIMIT:
            raise MessageSizeTooLargeError()
        await super().dead_letter(raw, origin, error)


async def test_an_unreadable_command_is_dead_lettered_with_its_bytes() -> None:
    service = await offer_service()
    await service.send(topics.OFFERS_COMMANDS, b"\x00not json{")
    [(raw, origin, error)] = service.broker.dead_letters
    assert raw == b"\x00not json{" and origin.topic == topics.OFFERS_COMMANDS and error
    assert service.outcome_count("dead_lettered") == 1


async def test_a_record_too_large_to_copy_is_dead_lettered_without_its_bytes() -> None:
    service = await offer_service(broker=SmallDeadLetterTopic())
    huge = b"x" * (LIMIT * 4)
    await service.send(topics.OFFERS_COMMANDS, huge)  # must not raise: that stalls the partition
    [(raw, _, error)] = service.broker.dead_letters
    assert raw == b"" and f"{len(huge)} bytes were too large to copy" in error


async def test_an_invalid_command_is_refused_with_every_field_error() -> None:
    service, p = await offer_service(), Parties()
    bad = p.extend()
    bad["terms"]["hourly_rate"] = "-3"
    del bad["job_id"]
    await service.send(topics.OFFERS_COMMANDS, bad, key=p.offer_id)
    rejected = service.one("CommandRejected", command_id=bad["command_id"])
    assert rejected["code"] == "invalid_command"
    assert {e["field"] for e in rejected["errors"]} >= {"job_id", "terms.hourly_rate"}


async def test_an_internal_command_sent_to_a_public_topic_is_dead_lettered_unapplied() -> None:
    """Outside producers cannot forge one: a public topic does not know the type."""
    service, p = await offer_service(), Parties()
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    forged = ExpireOffer(command_id="forged-1", offer_id=p.offer_id).model_dump(mode="json")
    await service.send(topics.OFFERS_COMMANDS, forged, key=p.offer_id)
    [(raw, _, error)] = service.broker.dead_letters
    assert json.loads(raw)["command_id"] == "forged-1" and "'ExpireOffer'" in error
    assert service.out("OfferExpired") == []


async def test_an_unreadable_event_is_dead_lettered_and_the_next_one_handled() -> None:
    offers, messaging, p = await offer_service(), await messaging_service(), Parties()
    await messaging.send(topics.OFFERS_EVENTS, b"not an event", key=p.offer_id)
    await messaging.send(topics.OFFERS_EVENTS, {"type": "OfferExtended"}, key=p.offer_id)
    await offers.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    [extended] = [e for e in offers.broker.published if e.type == "OfferExtended"]
    await messaging.send(topics.OFFERS_EVENTS, extended.payload.encode(), key=p.offer_id)
    assert await messaging.handlers.store.threads.get(p.offer_id) is not None
    assert messaging.outcome_count("dead_lettered") == 2
    assert messaging.broker.dead_letters[0][0] == b"not an event"


async def test_an_event_of_a_type_the_service_does_not_read_is_passed_over() -> None:
    messaging, p = await messaging_service(), Parties()
    newer = {"type": "OfferArchived", "event_id": "e-1", "offer_id": p.offer_id}
    await messaging.send(topics.OFFERS_EVENTS, newer, key=p.offer_id)
    assert messaging.outcome_count("skipped") == 1 and messaging.broker.dead_letters == []


async def test_a_handler_bug_dead_letters_the_command_and_the_partition_goes_on() -> None:
    service, p = await offer_service(), Parties()

    async def broken(handlers: object, command: object) -> None:
        raise KeyError("a bug")

    routes = service.records.table.routes
    real = routes[topics.OFFERS_COMMANDS]
    every_type_broken = tuple(handles(row.type, broken) for row in real.handles)
    routes[topics.OFFERS_COMMANDS] = replace(real, handles=every_type_broken)
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    [(raw, _, error)] = service.broker.dead_letters
    assert json.loads(raw)["offer_id"] == p.offer_id and "KeyError" in error
    routes[topics.OFFERS_COMMANDS] = real
    await service.send(topics.OFFERS_COMMANDS, Parties().extend())
    assert len(service.out("OfferExtended")) == 1


async def test_an_event_that_tells_nobody_anything_is_handled_quietly() -> None:
    notifications = await notification_service()
    # A TimeLogged tells nobody anything: handled (no notification), not an error.
    logged = {
        "type": "TimeLogged",
        "event_id": "e-1",
        "occurred_at": "2026-12-01T10:00:00Z",
        "causation_id": "c-1",
        "contract_id": "k-1",
        "entry_id": "t-1",
        "work_date": "2026-12-01",
        "hours": "2.00",
    }
    await notifications.send(topics.CONTRACTS_EVENTS, logged, key="k-1")
    await notifications.settle()
    assert notifications.out("NotificationCreated") == []
    assert notifications.outcome_count("handled") == 1


async def test_a_refused_command_redelivered_is_not_refused_again() -> None:
    service, p = await offer_service(), Parties()
    accept = command("AcceptOffer", p.freelancer_id, offer_id=p.offer_id, version=1)
    for _ in range(3):
        await service.send(topics.OFFERS_COMMANDS, accept, key=p.offer_id)
    assert len(service.out("CommandRejected")) == 1
    assert (
        service.metrics.registry.get_sample_value(
            "offers_rejections_total",
            {"service": "offer_service", "command_type": "AcceptOffer", "code": "unknown_offer"},
        )
        == 1
    )


# --- a record is applied only on its aggregate's partition ------------------------------------


async def test_a_command_keyed_by_another_id_is_refused_unapplied_naming_the_key() -> None:
    service, p = await offer_service(), Parties()
    extend = p.extend()
    await service.send(topics.OFFERS_COMMANDS, extend, key="k3")
    rejected = service.one("CommandRejected", command_id=extend["command_id"])
    assert rejected["code"] == "wrong_key" and repr(p.offer_id) in rejected["message"]
    assert rejected["errors"] == [{"field": "key", "message": f"must be {p.offer_id!r}"}]
    assert service.out("OfferExtended") == []
    # Not remembered: the producer sends it again, keyed right, with the same command id.
    await service.send(topics.OFFERS_COMMANDS, extend)
    assert len(service.out("OfferExtended")) == 1


async def test_a_command_without_a_key_is_refused_unapplied() -> None:
    service, p = await offer_service(), Parties()
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=b"")
    [rejected] = service.out("CommandRejected")
    assert rejected["code"] == "wrong_key" and "no key" in rejected["message"]
    assert service.out("OfferExtended") == []


async def test_a_key_with_a_nul_is_refused_and_stores_nothing_of_it() -> None:
    messaging, p = await messaging_service(), Parties()
    post = command("PostMessage", p.client_id, offer_id=p.offer_id, message_id="m-1", text="hi")
    await messaging.send(topics.NEGOTIATIONS_COMMANDS, post, key="ghost\x00" + p.offer_id)
    [rejected] = messaging.out("CommandRejected")
    assert rejected["code"] == "wrong_key"
    assert "\x00" not in rejected["errors"][0]["message"]  # shown as \\x00, never the NUL itself
    storage = messaging.storage  # nothing written: the database refuses a NUL
    assert storage.rejections.documents == {} and storage.parked.documents == {}


async def test_an_event_keyed_by_another_id_is_dead_lettered_unapplied() -> None:
    offers, messaging, p = await offer_service(), await messaging_service(), Parties()
    await offers.send(topics.OFFERS_COMMANDS, p.extend())
    [extended] = [e for e in offers.broker.published if e.type == "OfferExtended"]
    await messaging.send(topics.OFFERS_EVENTS, extended.payload.encode(), key="elsewhere")
    [(_, _, error)] = messaging.broker.dead_letters
    assert "keyed so" in error and await messaging.handlers.store.threads.get(p.offer_id) is None


async def test_a_refused_command_id_is_remembered_per_aggregate() -> None:
    service, a, b = await offer_service(), Parties(), Parties()
    accept = {"offer_id": a.offer_id, "version": 1}
    await service.send(topics.OFFERS_COMMANDS, a.extend())
    await service.send(topics.OFFERS_COMMANDS, b.extend())
    for offer in (a, b):  # the same command id, refused for a, then sent for b
        accept = {"offer_id": offer.offer_id, "version": 1, "command_id": "same-id"}
        await service.send(topics.OFFERS_COMMANDS, command("AcceptOffer", a.client_id, **accept))
    rejected = service.out("CommandRejected", command_id="same-id")
    assert [r["code"] for r in rejected] == ["not_authorized", "not_authorized"]


async def test_a_record_that_breaks_the_reader_itself_is_dead_lettered() -> None:
    service, p = await messaging_service(), Parties()

    def exploding(value: object) -> object:
        raise OverflowError("date value out of range")

    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[object, PlainValidator(exploding)])
    # No contract reads like this, so the row's own check would refuse it: set it behind it.
    object.__setattr__(service.records.table.routes[topics.OFFERS_EVENTS], "adapter", adapter)
    await service.send(topics.OFFERS_EVENTS, b"{}", key=p.offer_id)
    [(_, _, error)] = service.broker.dead_letters
    assert "OverflowError" in error


async def test_an_event_with_a_bad_tag_inside_is_dead_lettered_not_passed_over() -> None:
    offers, messaging, p = await offer_service(), await messaging_service(), Parties()
    await offers.send(topics.OFFERS_COMMANDS, p.extend())
    [extended] = [e for e in offers.broker.published if e.type == "OfferExtended"]
    broken = json.loads(extended.payload)
    broken["terms"]["contract_type"] = "barter"
    await messaging.send(topics.OFFERS_EVENTS, broken)
    assert messaging.outcome_count("dead_lettered") == 1
    assert messaging.outcome_count("skipped") == 0


def test_a_table_row_names_one_handler_for_each_type_its_topic_carries() -> None:
    """The one place a message type is dispatched: a type left out, or one the topic does
    not carry, is a mistake found when the table is made, not when a record comes."""
    real = OFFER_TABLE.routes[topics.OFFERS_COMMANDS]
    assert {t.__name__ for t in types_of(real.adapter)} == {
        "ExtendOffer",
        "ChangeOffer",
        "WithdrawOffer",
        "AcceptOffer",
        "DeclineOffer",
    }
    with pytest.raises(TypeError, match="DeclineOffer"):
        replace(real, handles=real.handles[:-1])
    with pytest.raises(TypeError, match="ExpireOffer"):
        replace(real, handles=(*real.handles, handles(ExpireOffer, _expire)))
    with pytest.raises(TypeError, match="a type named twice"):
        replace(real, handles=(*real.handles, real.handles[0]))


async def _expire(handlers: Any, command: ExpireOffer) -> None:
    raise AssertionError("never called")


async def test_what_this_process_published_is_forgotten_when_its_partition_is_given_away() -> None:
    """Outboxes marked by a record below what this process published are taken as
    published, without asking the group, only while it owns the partition: a later owner
    may handle those offsets again (its commit lost) and crash with what it stored
    unpublished, and the partition may then come back here."""
    service = await offer_service()
    records, where = service.records, (topics.OFFERS_COMMANDS, 0)
    records.in_flight.published_below[where] = 10  # as a batch up to offset 9 leaves it
    asked = service.partitions.committed_asked
    assert await records.published((*where, 9))
    assert service.partitions.committed_asked == asked  # known here: not asked

    await records.in_flight.on_partitions_revoked({TopicPartition(*where)})
    service.committed[where] = 4  # what the group has committed since
    assert not await records.published((*where, 9))  # published again, with its ids
    assert await records.published((*where, 3))
    assert service.partitions.committed_asked == asked + 1
