"""notification_service against the real Kafka and FerretDB: source events are published
straight onto their topics (offer_service and messaging_service are not running)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from pymongo import AsyncMongoClient

from contracts import MarkNotificationsRead, format_utc, topics
from contracts.internal import Notify
from services.notification_service.app import TABLE, create_app
from services.notification_service.domain import Planned
from services.notification_service.handlers import (
    NotificationHandlers,
    notification_id_for,
    notify_command,
    reminder_id_for,
)
from services.notification_service.store import NotificationStore
from services.runtime.clock import utc_now
from services.runtime.config import Settings
from services.runtime.decide import record_place
from services.runtime.documents import MongoDocuments
from services.runtime.due import due_bucket
from services.runtime.outbox import OutboxEntry
from services.runtime.refusals import Refusals
from services.runtime.uow import UnitOfWork
from tests.conftest import UNKNOWN_OFFER_WAIT_SECONDS as WAIT_SECONDS
from tests.conftest import fresh_settings, settings_for
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, Seen, as_, hourly_terms, new_id, of_type, running

pytestmark = pytest.mark.integration

NOTIFY: TypeAdapter[Notify] = TypeAdapter(Notify)

NOTIFICATION_FIELDS = (
    "notification_id",
    "recipient_id",
    "kind",
    "offer_id",
    "contract_id",
    "title",
    "body",
    "created_at",
    "source_event_id",
)


@pytest.fixture(scope="module")
async def service_settings(infra: Endpoints) -> Settings:
    return await fresh_settings(
        infra,
        "notification_service",
        offer_reminder_leads_seconds=(2, 1),
        expiry_sweep_interval_seconds=1,
    )


@pytest.fixture(scope="module")
async def service(service_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(service_settings)) as client:
        yield client


# --- building source events ------------------------------------------------------------------


def now_z(delta: float = 0) -> str:
    return format_utc(datetime.now(UTC) + timedelta(seconds=delta))


def event(type_: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": now_z(),
        "causation_id": str(uuid.uuid4()),
        **fields,
    }


def extended(p: Parties, *, expires_in: float = 30 * 86_400, **terms: Any) -> dict[str, Any]:
    return event(
        "OfferExtended",
        offer_id=p.offer_id,
        version=1,
        job_id=p.job_id,
        proposal_id=new_id("prop"),
        client_id=p.client_id,
        freelancer_id=p.freelancer_id,
        terms=hourly_terms(**terms),
        message="Looking forward to working with you",
        expires_at=now_z(expires_in),
    )


def closed(p: Parties, type_: str, version: int = 1, **fields: Any) -> dict[str, Any]:
    return event(
        type_,
        offer_id=p.offer_id,
        version=version,
        client_id=p.client_id,
        freelancer_id=p.freelancer_id,
        **fields,
    )


def accepted(p: Parties, version: int = 1) -> dict[str, Any]:
    return closed(p, "OfferAccepted", version, terms=hourly_terms(), accepted_at=now_z())


async def publish(producer: Producer, topic: str, message: dict[str, Any], key: str) -> None:
    await producer.send(topic, message, key=key)


async def inbox(client: httpx.AsyncClient, recipient_id: str, **params: str) -> dict[str, Any]:
    response = await client.get(
        "/notifications", params={"recipient_id": recipient_id, **params}, headers=as_(recipient_id)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def values(seen: list[Seen]) -> list[dict[str, Any]]:
    return [s.value for s in seen]


def unique_by_id(seen: list[Seen]) -> dict[str, dict[str, Any]]:
    return {s.value["notification_id"]: s.value for s in seen}


# --- tests ------------------------------------------------------------------------------------


async def test_one_notification_per_event_and_recipient_however_often_delivered(
    service: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    p = Parties()
    offer = extended(p)
    for _ in range(3):
        await publish(producer, topics.OFFERS_EVENTS, offer, p.offer_id)

    seen = await probe.wait_for(of_type("NotificationCreated", recipient_id=p.freelancer_id))
    await probe.quiet(2)
    published = probe.matching(of_type("NotificationCreated", recipient_id=p.freelancer_id))
    assert len(published) == 1
    created = seen[0].value
    assert seen[0].key == p.freelancer_id
    assert seen[0].headers["type"] == "NotificationCreated"
    assert created["kind"] == "offer_received"
    assert created["source_event_id"] == offer["event_id"]
    assert created["offer_id"] == p.offer_id
    assert "Checkout redesign" in created["title"]
    assert p.client_id in created["body"]
    assert "$45.00/h" in created["body"]
    assert "accept by" in created["body"]

    page = await inbox(service, p.freelancer_id)
    assert len(page["items"]) == 1
    item = page["items"][0]
    assert {k: item[k] for k in NOTIFICATION_FIELDS} == {k: created[k] for k in NOTIFICATION_FIELDS}
    assert item["read"] is False
    # Nobody else heard of it.
    assert (await inbox(service, p.client_id))["items"] == []


async def test_every_source_event_notifies_its_recipients_and_inbox_matches_the_wire(
    service: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    p = Parties()
    contract_id = new_id("contract")
    await publish(producer, topics.OFFERS_EVENTS, extended(p), p.offer_id)
    changed = event(
        "OfferChanged",
        offer_id=p.offer_id,
        version=2,
        client_id=p.client_id,
        freelancer_id=p.freelancer_id,
        terms=hourly_terms(hourly_rate="50.00"),
        message=None,
        in_response_to=None,
        expires_at=now_z(30 * 86_400),
    )
    await publish(producer, topics.OFFERS_EVENTS, changed, p.offer_id)
    posted = event(
        "MessagePosted",
        offer_id=p.offer_id,
        message_id=new_id("msg"),
        sender_id=p.client_id,
        text="Can you start a week earlier?",
        sent_at=now_z(),
    )
    proposed = event(
        "TermsProposed",
        offer_id=p.offer_id,
        message_id=new_id("msg"),
        sender_id=p.freelancer_id,
        changes={"hourly_rate": "55.00"},
        differences=[{"field": "hourly_rate", "current": "50.00", "proposed": "55.00"}],
        text="55 would work for me",
        sent_at=now_z(),
    )
    for message in (posted, proposed):
        await publish(producer, topics.NEGOTIATIONS_EVENTS, message, p.offer_id)
    await publish(producer, topics.OFFERS_EVENTS, accepted(p, version=2), p.offer_id)
    activated = event(
        "ContractActivated",
        contract_id=contract_id,
        offer_id=p.offer_id,
        offer_version=2,
        job_id=p.job_id,
        client_id=p.client_id,
        freelancer_id=p.freelancer_id,
        terms=hourly_terms(hourly_rate="50.00"),
        activated_at=now_z(),
    )
    await publish(producer, topics.CONTRACTS_EVENTS, activated, contract_id)
    joined = event(
        "TalentCloudMemberAdded",
        talent_cloud_id="tc-design",
        freelancer_id=p.freelancer_id,
        contract_id=contract_id,
    )
    await publish(producer, topics.TALENT_CLOUDS_EVENTS, joined, "tc-design")

    freelancer = await probe.wait_for(
        of_type("NotificationCreated", recipient_id=p.freelancer_id), count=5
    )
    client = await probe.wait_for(of_type("NotificationCreated", recipient_id=p.client_id), count=3)
    await probe.quiet(1)
    freelancer_kinds = sorted(v["kind"] for v in unique_by_id(freelancer).values())
    client_kinds = sorted(v["kind"] for v in unique_by_id(client).values())
    assert freelancer_kinds == sorted(
        ["offer_received", "offer_changed", "new_message", "contract_active", "talent_cloud_joined"]
    )
    assert client_kinds == sorted(["terms_proposed", "offer_accepted", "contract_active"])

    by_kind = {v["kind"]: v for v in [*values(freelancer), *values(client)]}
    assert "$50.00/h" in by_kind["offer_changed"]["body"]
    assert "was $45.00/h" in by_kind["offer_changed"]["body"]
    assert "start a week earlier" in by_kind["new_message"]["body"]
    assert p.client_id in by_kind["new_message"]["body"]
    assert "hourly_rate 50.00 → 55.00" in by_kind["terms_proposed"]["body"]
    assert p.freelancer_id in by_kind["offer_accepted"]["body"]
    assert by_kind["contract_active"]["contract_id"] == contract_id
    assert "tc-design" in by_kind["talent_cloud_joined"]["title"]

    # The stored inbox is exactly what went on the wire.
    for recipient, published in ((p.freelancer_id, freelancer), (p.client_id, client)):
        items = (await inbox(service, recipient))["items"]
        stored = {i["notification_id"]: {k: i[k] for k in NOTIFICATION_FIELDS} for i in items}
        wire = {
            nid: {k: v[k] for k in NOTIFICATION_FIELDS}
            for nid, v in unique_by_id(published).items()
        }
        assert stored == wire


async def test_declined_withdrawn_and_expired_offers(
    service: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    declined, withdrawn, expired = Parties(), Parties(), Parties()
    for p in (declined, withdrawn, expired):
        await publish(producer, topics.OFFERS_EVENTS, extended(p, title="Logo work"), p.offer_id)
    await publish(
        producer,
        topics.OFFERS_EVENTS,
        closed(declined, "OfferDeclined", proposal_id=new_id("prop"), reason="Too busy"),
        declined.offer_id,
    )
    await publish(
        producer,
        topics.OFFERS_EVENTS,
        closed(withdrawn, "OfferWithdrawn", reason="Budget cut"),
        withdrawn.offer_id,
    )
    await publish(producer, topics.OFFERS_EVENTS, closed(expired, "OfferExpired"), expired.offer_id)

    [d] = await probe.wait_for(
        of_type("NotificationCreated", recipient_id=declined.client_id, kind="offer_declined")
    )
    assert "Logo work" in d.value["title"]
    assert declined.freelancer_id in d.value["body"] and "Too busy" in d.value["body"]
    [w] = await probe.wait_for(
        of_type("NotificationCreated", recipient_id=withdrawn.freelancer_id, kind="offer_withdrawn")
    )
    assert "Logo work" in w.value["title"] and "Budget cut" in w.value["body"]
    for recipient in (expired.client_id, expired.freelancer_id):
        [e] = await probe.wait_for(
            of_type("NotificationCreated", recipient_id=recipient, kind="offer_expired")
        )
        assert "Logo work" in e.value["title"]


async def test_mark_read_by_recipient_only_and_unread_filter(
    service: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    freelancer = new_id("free")
    offers = [Parties(freelancer_id=freelancer) for _ in range(2)]
    for p in offers:
        await publish(producer, topics.OFFERS_EVENTS, extended(p), p.offer_id)
    seen = await probe.wait_for(of_type("NotificationCreated", recipient_id=freelancer), count=2)
    first, second = (s.value["notification_id"] for s in seen[:2])

    intruder = {
        "type": "MarkNotificationsRead",
        "command_id": str(uuid.uuid4()),
        "actor_id": offers[0].client_id,
        "recipient_id": freelancer,
        "notification_ids": [first],
    }
    for _ in range(2):  # a redelivered refusal is not refused twice
        await publish(producer, topics.NOTIFICATIONS_COMMANDS, intruder, freelancer)
    [rejected] = await probe.wait_for(of_type("CommandRejected", command_id=intruder["command_id"]))
    assert rejected.value["code"] == "not_authorized"
    assert rejected.key == freelancer

    someone_else = Parties()
    await publish(producer, topics.OFFERS_EVENTS, extended(someone_else), someone_else.offer_id)
    [other] = await probe.wait_for(
        of_type("NotificationCreated", recipient_id=someone_else.freelancer_id)
    )
    mark = {
        "type": "MarkNotificationsRead",
        "command_id": str(uuid.uuid4()),
        "actor_id": freelancer,
        "recipient_id": freelancer,
        # Someone else's id among them is ignored.
        "notification_ids": [first, other.value["notification_id"]],
    }
    for _ in range(2):  # idempotent
        await publish(producer, topics.NOTIFICATIONS_COMMANDS, mark, freelancer)

    async def unread_ids() -> set[str]:
        items = (await inbox(service, freelancer, unread_only="true"))["items"]
        return {i["notification_id"] for i in items}

    for _ in range(100):
        if await unread_ids() == {second}:
            break
        await asyncio.sleep(0.1)
    assert await unread_ids() == {second}
    everything = {
        i["notification_id"]: i["read"] for i in (await inbox(service, freelancer))["items"]
    }
    assert everything == {first: True, second: False}
    others = (await inbox(service, someone_else.freelancer_id))["items"]
    assert [i["read"] for i in others] == [False]
    await probe.quiet(1)
    assert len(probe.matching(of_type("CommandRejected", command_id=intruder["command_id"]))) == 1
    assert probe.matching(of_type("CommandRejected", command_id=mark["command_id"])) == []


async def test_inbox_is_paginated_newest_first(
    service: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    freelancer = new_id("free")
    for _ in range(5):
        p = Parties(freelancer_id=freelancer)
        await publish(producer, topics.OFFERS_EVENTS, extended(p), p.offer_id)
    await probe.wait_for(of_type("NotificationCreated", recipient_id=freelancer), count=5)

    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = await inbox(service, freelancer, **params)
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [2, 2, 1]
    items = [item for page in pages for item in page]
    assert len({i["notification_id"] for i in items}) == 5
    keys = [(i["created_at"], i["notification_id"]) for i in items]
    assert keys == sorted(keys, reverse=True)


async def test_read_api_rejects_bad_queries(service: httpx.AsyncClient) -> None:
    me = as_("x")
    missing = await service.get("/notifications", headers=me)
    assert missing.status_code == 400
    assert missing.json()["error"] == "bad_request"
    bad_flag = await service.get(
        "/notifications", params={"recipient_id": "x", "unread_only": "?"}, headers=me
    )
    assert bad_flag.status_code == 400
    bad_limit = await service.get(
        "/notifications", params={"recipient_id": "x", "limit": "0"}, headers=me
    )
    assert bad_limit.status_code == 400
    nobody = await service.get("/notifications", params={"recipient_id": "x"})
    assert (nobody.status_code, nobody.json()["error"]) == (401, "unauthenticated")
    other = await service.get("/notifications", params={"recipient_id": "y"}, headers=me)
    assert (other.status_code, other.json()["error"]) == (403, "forbidden")
    health = await service.get("/health")
    assert health.status_code == 200


async def reminding_settings(infra: Endpoints, leads: tuple[int, ...]) -> Settings:
    """A notification_service of a test's own, sending reminders with `leads` and sweeping
    every second (the module's service sends (2, 1)-second reminders of the same offers)."""
    return await fresh_settings(
        infra,
        "notification_service",
        database_name=f"test_notification_leads_{new_id('db')}",
        offer_reminder_leads_seconds=leads,
        expiry_sweep_interval_seconds=1,
    )


def reminders_of(p: Parties, leads: tuple[int, ...]) -> Callable[[Seen], bool]:
    """The NotificationCreated of the offer's reminders with `leads`, by their ids."""
    ids = {
        notification_id_for(reminder_id_for(p.offer_id, 1, lead), p.freelancer_id) for lead in leads
    }
    return lambda seen: (
        of_type("NotificationCreated")(seen) and seen.value["notification_id"] in ids
    )


async def test_expiry_reminders_fire_once_per_lead_and_not_after_acceptance(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    """A service of its own, with leads 3 s apart: reminders that fall due together are sent
    as one (by design), so leads 1 s apart failed whenever a busy machine held the sweep up
    for a second. (The module's service reminds these offers too, with leads of its own:
    only this service's notification ids are counted.)"""
    leads = (6, 3)
    settings = await reminding_settings(infra, leads)
    pending, taken = Parties(), Parties()

    def ours(p: Parties) -> Callable[[Seen], bool]:
        return reminders_of(p, leads)

    async with running(create_app(settings)) as service:
        # Both leads are still ahead when the service reads the events (a lead already past
        # on arrival is folded into one late reminder, by design).
        for message, offer in (
            (extended(pending, expires_in=10), pending),
            (extended(taken, expires_in=10), taken),
            (accepted(taken), taken),
        ):
            await publish(producer, topics.OFFERS_EVENTS, message, offer.offer_id)
        await probe.wait_for(ours(pending), count=2, within=30)
        await asyncio.sleep(5)  # past expiry: nothing more comes
        reminders = probe.matching(ours(pending))
        stored = (await inbox(service, pending.freelancer_id))["items"]
    assert len(reminders) == 2
    assert len({r.value["notification_id"] for r in reminders}) == 2
    assert all(r.value["kind"] == "offer_expiring" for r in reminders)
    assert all("Checkout redesign" in r.value["title"] for r in reminders)
    assert all("expires in" in r.value["body"] for r in reminders)
    assert probe.matching(ours(taken)) == []
    assert sorted(i["kind"] for i in stored) == [
        "offer_expiring",
        "offer_expiring",
        "offer_received",
    ]


async def test_a_change_restarts_the_reminder_window(
    service: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    p = Parties()
    await publish(producer, topics.OFFERS_EVENTS, extended(p, expires_in=3), p.offer_id)
    changed = event(
        "OfferChanged",
        offer_id=p.offer_id,
        version=2,
        client_id=p.client_id,
        freelancer_id=p.freelancer_id,
        terms=hourly_terms(hourly_rate="60.00"),
        message=None,
        in_response_to=None,
        expires_at=now_z(30 * 86_400),
    )
    await publish(producer, topics.OFFERS_EVENTS, changed, p.offer_id)
    await probe.wait_for(
        of_type("NotificationCreated", recipient_id=p.freelancer_id, kind="offer_changed")
    )
    await asyncio.sleep(4)
    assert (
        probe.matching(
            of_type("NotificationCreated", recipient_id=p.freelancer_id, kind="offer_expiring")
        )
        == []
    )


async def test_a_message_waits_for_its_offer(
    service: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    p = Parties()
    posted = event(
        "MessagePosted",
        offer_id=p.offer_id,
        message_id=new_id("msg"),
        sender_id=p.freelancer_id,
        text="Quick question about the scope",
        sent_at=now_z(),
    )
    await publish(producer, topics.NEGOTIATIONS_EVENTS, posted, p.offer_id)
    await asyncio.sleep(0.5)
    await publish(producer, topics.OFFERS_EVENTS, extended(p), p.offer_id)
    [message] = await probe.wait_for(
        of_type("NotificationCreated", recipient_id=p.client_id, kind="new_message")
    )
    assert p.freelancer_id in message.value["body"]


async def test_a_message_whose_offer_comes_after_the_wait_is_notified_when_it_does(
    service: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    p = Parties()
    posted = event(
        "MessagePosted",
        offer_id=p.offer_id,
        message_id=new_id("msg"),
        sender_id=p.client_id,
        text="Are you available next week?",
        sent_at=now_z(),
    )
    await publish(producer, topics.NEGOTIATIONS_EVENTS, posted, p.offer_id)
    await asyncio.sleep(WAIT_SECONDS + 1.5)  # past the bounded wait: the message is kept
    assert not probe.matching(of_type("NotificationCreated", recipient_id=p.freelancer_id))
    offer = extended(p)
    await publish(producer, topics.OFFERS_EVENTS, offer, p.offer_id)
    kinds = await probe.wait_for(
        of_type("NotificationCreated", recipient_id=p.freelancer_id), count=2
    )
    assert sorted(k.value["kind"] for k in kinds) == ["new_message", "offer_received"]
    await publish(producer, topics.OFFERS_EVENTS, offer, p.offer_id)  # redelivered
    await probe.quiet()
    assert len(probe.matching(of_type("NotificationCreated", recipient_id=p.freelancer_id))) == 2


async def test_unreadable_records_are_skipped_or_dead_lettered(
    service: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    key = new_id("garbage")
    await producer.send(topics.NOTIFICATIONS_COMMANDS, b"\x00not json{", key=key)
    await producer.send(topics.OFFERS_EVENTS, b"not an event", key=key)
    await producer.send(topics.OFFERS_EVENTS, {"type": "OfferExtended", "offer_id": key}, key=key)

    def dead_letter_from(topic: str) -> Callable[[Seen], bool]:
        def matches(seen: Seen) -> bool:
            return (
                seen.topic == topics.COMMANDS_DEAD_LETTER
                and seen.key == key
                and seen.headers.get("source_topic") == topic
            )

        return matches

    # Each record is dead-lettered on its own (they may arrive in one fetch).
    [dead] = await probe.wait_for(dead_letter_from(topics.NOTIFICATIONS_COMMANDS))
    assert dead.raw == b"\x00not json{"
    assert {"source_partition", "source_offset", "error"} <= dead.headers.keys()
    unreadable = await probe.wait_for(dead_letter_from(topics.OFFERS_EVENTS), count=2)
    assert b"not an event" in {seen.raw for seen in unreadable}

    # Both consumers carry on.
    p = Parties()
    await publish(producer, topics.OFFERS_EVENTS, extended(p), p.offer_id)
    [created] = await probe.wait_for(of_type("NotificationCreated", recipient_id=p.freelancer_id))
    invalid = {
        "type": "MarkNotificationsRead",
        "command_id": str(uuid.uuid4()),
        "actor_id": p.freelancer_id,
        "recipient_id": p.freelancer_id,
        "notification_ids": [],
    }
    await publish(producer, topics.NOTIFICATIONS_COMMANDS, invalid, p.freelancer_id)
    [rejected] = await probe.wait_for(of_type("CommandRejected", command_id=invalid["command_id"]))
    assert rejected.value["code"] == "invalid_command"
    assert created.value["kind"] == "offer_received"


async def test_two_instances_send_each_reminder_exactly_once(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    """Both instances sweep the same reminders; each is sent by its offer's handler, once.
    (Lead times of their own: the module's service sends (2, 1)-second reminders too. Five
    seconds apart, because reminders that fall due together are sent as one, and the two
    instances' first rebalance can hold the internal topic for a few seconds.)"""
    leads = (10, 5)
    settings = await reminding_settings(infra, leads)
    p = Parties()
    reminder_of_ours = reminders_of(p, leads)

    async with running(create_app(settings)), running(create_app(settings)):
        await publish(producer, topics.OFFERS_EVENTS, extended(p, expires_in=14), p.offer_id)
        await probe.wait_for(reminder_of_ours, count=len(leads), within=40)
        await probe.quiet(2)
    sent = [seen.value["notification_id"] for seen in probe.matching(reminder_of_ours)]
    assert len(sent) == len(set(sent)) == len(leads)  # each of ours (by its id), once


async def test_a_notification_stored_but_not_published_goes_out_when_asked_again(
    service_settings: Settings, service: httpx.AsyncClient, probe: Probe, producer: Producer
) -> None:
    """As after a kill -9 between the write and the publish: the Notify is handled again
    (its offset was never committed), finds the notification stored and publishes it."""
    settings = service_settings
    internal = topics.internal(settings.kafka_group_id)
    client = AsyncMongoClient[dict[str, Any]](settings.mongodb_url, tz_aware=True)
    recipient = new_id("free")
    plan = Planned(recipient, "new_message", "New message: Logo", "hello")
    ask = notify_command(
        plan, source_id=str(uuid.uuid4()), uow=UnitOfWork(_never, utc_now, internal)
    )
    try:

        async def lost(entries: Sequence[OutboxEntry]) -> None:
            raise ConnectionError("killed before publishing")

        database = client[settings.database_name]
        store = NotificationStore.on(lambda name: MongoDocuments(database[name]))
        crashed = NotificationHandlers(
            store,
            UnitOfWork(lost, utc_now),
            Refusals(
                MongoDocuments(client[settings.database_name]["rejections"]),
                UnitOfWork(lost, utc_now),
            ),
            reminder_leads_seconds=(),
        )
        row = TABLE.for_group(settings.kafka_group_id).routes[internal]
        placing = record_place.set(1)  # as if it were the internal topic's first record
        try:
            with pytest.raises(ConnectionError):
                await row.handle(crashed, NOTIFY.validate_json(ask.payload))
        finally:
            record_place.reset(placing)
    finally:
        await client.close()
    await producer.send(
        topics.internal(settings.kafka_group_id), ask.payload.encode(), key=recipient
    )
    [published] = await probe.wait_for(of_type("NotificationCreated", recipient_id=recipient))
    [stored] = (await inbox(service, recipient))["items"]
    assert {k: stored[k] for k in NOTIFICATION_FIELDS} == {
        k: published.value[k] for k in NOTIFICATION_FIELDS
    }
    await probe.quiet()
    assert len(probe.matching(of_type("NotificationCreated", recipient_id=recipient))) == 1


async def _never(entries: Sequence[OutboxEntry]) -> None:
    raise AssertionError("nothing is published here")


async def test_marking_the_most_notifications_a_command_may_name_read_in_one_go(
    infra: Endpoints,
) -> None:
    """500 ids (MarkNotificationsRead's maximum) in one call: a bulk update of that many
    statements exhausted FerretDB's PostgreSQL pool and stalled the whole database."""
    settings = settings_for(
        infra, "notification_service", database_name=f"test_notification_read_{new_id('db')}"
    )
    client = AsyncMongoClient[dict[str, Any]](settings.mongodb_url, tz_aware=True)
    try:
        database = client[settings.database_name]
        store = NotificationStore.on(lambda name: MongoDocuments(database[name]))
        await store.ensure_indexes()
        mine, theirs = [f"n-{i}" for i in range(450)], [f"t-{i}" for i in range(50)]
        await database["notifications"].insert_many(
            [{"_id": n, "recipient_id": "free-1", "read": False} for n in mine]
            + [{"_id": n, "recipient_id": "free-2", "read": False} for n in theirs]
        )
        uow = UnitOfWork(_never, utc_now)
        handlers = NotificationHandlers(
            store,
            uow,
            Refusals(MongoDocuments(database["rejections"]), uow),
            reminder_leads_seconds=(),
        )
        row = TABLE.for_group(settings.kafka_group_id).routes[topics.NOTIFICATIONS_COMMANDS]
        mark = MarkNotificationsRead(
            command_id=new_id("cmd"),
            actor_id="free-1",
            recipient_id="free-1",
            notification_ids=mine + theirs,
        )
        for _ in range(2):  # the second time, nothing is left to change
            await asyncio.wait_for(row.handle(handlers, mark), 60)
            read = await database["notifications"].find({"read": True}).to_list()
            assert sorted(n["_id"] for n in read) == sorted(mine)
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


async def test_reminders_stored_the_former_way_are_sent_after_an_upgrade(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    """A database written by the version that kept each reminder in `reminders`: at start,
    the pending ones move into their offers' projections and are sent from there; cancelled
    ones and projections with reminders of their own are left as they are."""
    settings = await fresh_settings(
        infra,
        "notification_service",
        database_name=f"test_notification_legacy_{new_id('db')}",
        offer_reminder_leads_seconds=(60,),
        expiry_sweep_interval_seconds=1,
    )
    pending, cancelled = Parties(), Parties()
    now = utc_now()
    expires = now + timedelta(minutes=10)

    def projection(p: Parties) -> dict[str, Any]:
        return {
            "_id": p.offer_id,
            "client_id": p.client_id,
            "freelancer_id": p.freelancer_id,
            "status": "pending",
            "version": 1,
            "title": "Checkout redesign",
            "summary": None,
            "expires_at": expires,
            "revision": 1,
            "handled": [],
            "outbox": [],
        }

    def reminder(p: Parties, lead: int, state: str) -> dict[str, Any]:
        due = now + timedelta(seconds=2)
        return {
            "_id": reminder_id_for(p.offer_id, 1, lead),
            "offer_id": p.offer_id,
            "version": 1,
            "lead_seconds": lead,
            "due_at": due,
            "expires_at": expires,
            "freelancer_id": p.freelancer_id,
            "state": state,
            **({"due_bucket": due_bucket(due)} if state == "pending" else {}),
        }

    client = AsyncMongoClient[dict[str, Any]](settings.mongodb_url, tz_aware=True)
    database = client[settings.database_name]
    try:
        await database["offers"].insert_many([projection(pending), projection(cancelled)])
        await database["reminders"].insert_many(
            [reminder(pending, 3_600, "pending"), reminder(cancelled, 3_600, "cancelled")]
        )
        async with running(create_app(settings)):
            sent = notification_id_for(
                reminder_id_for(pending.offer_id, 1, 3_600), pending.freelancer_id
            )
            [created] = await probe.wait_for(
                of_type("NotificationCreated", notification_id=sent), within=30
            )
            assert created.value["kind"] == "offer_expiring"
            await probe.quiet(2)
        assert "reminders" not in await database.list_collection_names()
        done = await database["offers"].find_one({"_id": pending.offer_id})
        assert done is not None and done["reminders"] == [] and done["due_bucket"] is None
        left = await database["offers"].find_one({"_id": cancelled.offer_id})
        assert left is not None and "reminders" not in left
        assert (
            probe.matching(of_type("NotificationCreated", recipient_id=cancelled.freelancer_id))
            == []
        )
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


async def test_preferences_and_counters_stored_the_former_way_are_kept_after_an_upgrade(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    """A database written by the version that kept preferences in `preferences` and a bare
    counter in `inboxes`: at start, each preferences document moves into its inbox, the
    numbering goes on from the counter, the email is planned from the moved preferences, and
    the command they remember is not applied twice."""
    settings = await fresh_settings(
        infra,
        "notification_service",
        database_name=f"test_notification_legacy_{new_id('db')}",
    )
    chose, counted = new_id("free"), new_id("free")
    chosen_at = utc_now().replace(microsecond=0) - timedelta(days=3)
    earlier_command, chose_command = str(uuid.uuid4()), str(uuid.uuid4())
    client = AsyncMongoClient[dict[str, Any]](settings.mongodb_url, tz_aware=True)
    database = client[settings.database_name]
    internal = topics.internal(settings.kafka_group_id)
    asks = UnitOfWork(_never, utc_now, internal)
    try:
        await database["preferences"].insert_one(
            {
                "_id": chose,
                "email": "bob@example.com",
                "email_kinds": ["all"],
                "digest_kinds": [],
                "revision": 1,
                "handled": [earlier_command, chose_command],
                "outbox": [],
                "created_at": chosen_at,
                "updated_at": chosen_at,
            }
        )
        await database["inboxes"].insert_many(
            [{"_id": chose, "last_seq": 7}, {"_id": counted, "last_seq": 3}]
        )
        async with running(create_app(settings)) as service:
            assert "preferences" not in await database.list_collection_names()
            shown = await service.get(
                "/notifications/preferences", params={"recipient_id": chose}, headers=as_(chose)
            )
            assert shown.json() == {
                "recipient_id": chose,
                "email": "bob@example.com",
                "email_kinds": ["all"],
                "digest_kinds": [],
                "updated_at": format_utc(chosen_at),
            }
            for recipient in (chose, counted):
                plan = Planned(recipient, "new_message", "New message: Logo", "hello")
                ask = notify_command(plan, source_id=str(uuid.uuid4()), uow=asks)
                await producer.send(internal, ask.payload.encode(), key=recipient)
            # Planned from the moved preferences before the commands below change them: the
            # internal topic and notifications.commands are two topics, with no order between
            # them (one consumer may fetch both in one batch, in either order).
            await probe.wait_for(of_type("NotificationCreated", recipient_id=chose))

            # The command the moved preferences remember, again: not applied twice. (Other
            # deployments of this module read notifications.commands too, so the proof is
            # this database's inbox, once a later command behind it has been applied.)
            def choose(command_id: str, email: str) -> dict[str, Any]:
                return {
                    "type": "SetNotificationPreferences",
                    "command_id": command_id,
                    "actor_id": chose,
                    "recipient_id": chose,
                    "email": email,
                    "email_kinds": ["all"],
                    "digest_kinds": [],
                }

            later = str(uuid.uuid4())
            for command in (choose(chose_command, "mallory@example.com"), choose(later, "c@d.io")):
                await publish(producer, topics.NOTIFICATIONS_COMMANDS, command, chose)
            await probe.wait_for(of_type("NotificationCreated", recipient_id=counted))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while (inbox_now := await database["inboxes"].find_one({"_id": chose})) is None or (
                inbox_now.get("email") != "c@d.io"
            ):
                assert loop.time() < deadline, f"the later preferences never came: {inbox_now}"
                await asyncio.sleep(0.1)
        # The ids the moved preferences remembered, then only the later command's.
        assert inbox_now["handled"] == [earlier_command, chose_command, later]
        mine = await database["notifications"].find_one({"recipient_id": chose})
        theirs = await database["notifications"].find_one({"recipient_id": counted})
        # Numbered past the counters the inboxes had (7 and 3).
        assert mine is not None and mine["seq"] > 7 and mine["email_to"] == "bob@example.com"
        assert theirs is not None and theirs["seq"] > 3 and "email_to" not in theirs
    finally:
        await client.drop_database(settings.database_name)
        await client.close()
