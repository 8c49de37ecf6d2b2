"""Each service in the handler tier: its real table and handlers on in-memory documents."""

from __future__ import annotations

import json
from typing import Any

from services.messaging_service.app import TABLE as MESSAGING
from services.messaging_service.handlers import MessagingHandlers
from services.messaging_service.store import ThreadStore
from services.notification_service.app import TABLE as NOTIFICATION
from services.notification_service.handlers import NotificationHandlers
from services.notification_service.store import NotificationStore
from services.offer_service.app import TABLE as OFFER
from services.offer_service.domain.offer import Policy
from services.offer_service.handlers import OfferHandlers
from services.offer_service.store import OfferStore
from services.runtime.outbox import OutboxEntry

from .harness import Broker, Clock, Harness, Storage

LEADS = (72 * 3600, 24 * 3600)


class OfferStorage(Storage):
    def __init__(self) -> None:
        super().__init__()
        self.store = OfferStore.in_memory()


class ThreadStorage(Storage):
    def __init__(self) -> None:
        super().__init__()
        self.store = ThreadStore.in_memory()


class NotificationStorage(Storage):
    def __init__(self) -> None:
        super().__init__()
        self.store = NotificationStore.in_memory()


async def offer_service(
    storage: OfferStorage | None = None, clock: Clock | None = None, broker: Broker | None = None
) -> Harness:
    kept = storage or OfferStorage()
    return await Harness(
        OFFER,
        lambda uow, refusals: OfferHandlers(kept.store, uow, refusals, policy=Policy()),
        storage=kept,
        clock=clock,
        broker=broker,
    ).start()


async def messaging_service(
    storage: ThreadStorage | None = None, clock: Clock | None = None, broker: Broker | None = None
) -> Harness:
    kept = storage or ThreadStorage()
    return await Harness(
        MESSAGING,
        lambda uow, refusals: MessagingHandlers(kept.store, uow, refusals, max_contract_days=180),
        storage=kept,
        clock=clock,
        broker=broker,
    ).start()


async def notification_service(
    storage: NotificationStorage | None = None,
    clock: Clock | None = None,
    broker: Broker | None = None,
) -> Harness:
    kept = storage or NotificationStorage()
    return await Harness(
        NOTIFICATION,
        lambda uow, refusals: NotificationHandlers(
            kept.store, uow, refusals, reminder_leads_seconds=LEADS
        ),
        storage=kept,
        clock=clock,
        broker=broker,
    ).start()


def published(source: Harness, type_: str, **fields: Any) -> list[OutboxEntry]:
    return [
        entry
        for entry in source.broker.published
        if entry.type == type_
        and all(json.loads(entry.payload).get(k) == v for k, v in fields.items())
    ]


async def forward(source: Harness, target: Harness, type_: str, **fields: Any) -> None:
    """What `source` published of `type_`, delivered to `target` (as Kafka would)."""
    for entry in published(source, type_, **fields):
        await target.send(entry.topic, entry.payload.encode(), key=entry.key)
