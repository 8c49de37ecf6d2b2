"""What Records makes of any record, whatever the service: one outcome each."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

from contracts import topics
from contracts.internal import ExpireOffer
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


async def test_an_unreadable_event_is_skipped_and_the_next_one_handled() -> None:
    offers, messaging, p = await offer_service(), await messaging_service(), Parties()
    await messaging.send(topics.OFFERS_EVENTS, b"not an event", key=p.offer_id)
    await messaging.send(topics.OFFERS_EVENTS, {"type": "OfferExtended"}, key=p.offer_id)
    await offers.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    [extended] = [e for e in offers.broker.published if e.type == "OfferExtended"]
    await messaging.send(topics.OFFERS_EVENTS, extended.payload.encode(), key=p.offer_id)
    assert await messaging.handlers.store.threads.get(p.offer_id) is not None
    assert messaging.outcome_count("skipped") == 2


async def test_a_handler_bug_dead_letters_the_command_and_the_partition_goes_on() -> None:
    service, p = await offer_service(), Parties()

    async def broken(handlers: object, command: object) -> None:
        raise KeyError("a bug")

    routes = service.records.table.routes
    routes[topics.OFFERS_COMMANDS] = replace(routes[topics.OFFERS_COMMANDS], handle=broken)
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    [(raw, _, error)] = service.broker.dead_letters
    assert json.loads(raw)["offer_id"] == p.offer_id and "KeyError" in error
    routes[topics.OFFERS_COMMANDS] = replace(routes[topics.OFFERS_COMMANDS], handle=_real)
    await service.send(topics.OFFERS_COMMANDS, Parties().extend(), key="other")
    assert len(service.out("OfferExtended")) == 1


async def _real(handlers: Any, command: Any) -> None:
    await handlers.on_offer_command(command)


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
