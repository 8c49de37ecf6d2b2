"""offer_service's FastStream wiring: subscribers, declared publishers, background tasks
and the HTTP read API. Everything with a rule in it lives in domain/ and handlers.py."""

from __future__ import annotations

import logging
from datetime import timedelta

from faststream.kafka.annotations import KafkaMessage
from starlette.applications import Starlette

from contracts import (
    CONTRACT_COMMAND_ADAPTER,
    OFFER_COMMAND_ADAPTER,
    OFFER_EVENT_ADAPTER,
    OfferAccepted,
    OfferEvent,
    topics,
)
from services.runtime.background import every
from services.runtime.clock import utc_now
from services.runtime.config import Settings, mongo_client
from services.runtime.consumer import consume_command, consume_event
from services.runtime.http import service_http_app
from services.runtime.kafka import Publishers, new_broker, subscribe
from services.runtime.metrics import ServiceMetrics
from services.runtime.outbox import relay_forever
from services.runtime.ownership import Ownership
from services.runtime.refusals import Refusals
from services.runtime.wire import RecordOrigin

from .domain.offer import Policy
from .handlers import OfferHandlers
from .read_api import read_routes
from .store import MongoOfferStore

log = logging.getLogger(__name__)

NAME = "offer_service"
HTTP_PORT = 8001


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env(NAME, HTTP_PORT)
    metrics = ServiceMetrics(NAME)
    broker = new_broker(settings, log, metrics)
    mongo = mongo_client(settings)
    # Who writes which offer and contract: the owner of its key's command partition.
    offers_ownership = Ownership(topics.OFFERS_COMMANDS)
    contracts_ownership = Ownership(topics.CONTRACTS_COMMANDS)
    store = MongoOfferStore(
        mongo[settings.database_name],
        offers_ownership=offers_ownership,
        contracts_ownership=contracts_ownership,
    )
    publishers = Publishers(
        broker,
        (
            topics.OFFERS_EVENTS,
            topics.CONTRACTS_EVENTS,
            topics.TALENT_CLOUDS_EVENTS,
            topics.COMMANDS_REJECTED,
            topics.COMMANDS_DEAD_LETTER,
        ),
    )
    publish, dead_letter = publishers.publish, publishers.dead_letter

    refusals = Refusals(mongo[settings.database_name], publish, utc_now, metrics)
    outboxes = (*store.outboxes, refusals.outbox)
    handlers = OfferHandlers(
        store,
        publish,
        policy=Policy(
            offer_ttl=timedelta(seconds=settings.offer_ttl_seconds),
            max_contract_days=settings.max_contract_days,
        ),
        clock=utc_now,
        unknown_contract_wait=settings.unknown_offer_wait_seconds,
        offers=offers_ownership,
        contracts=contracts_ownership,
        refusals=refusals,
    )

    @subscribe(broker, topics.OFFERS_COMMANDS, settings, ownership=offers_ownership)
    async def on_offer_command(body: bytes, message: KafkaMessage) -> None:
        await consume_command(
            body,
            RecordOrigin.of(message.raw_message),
            adapter=OFFER_COMMAND_ADAPTER,
            max_contract_days=settings.max_contract_days,
            handle=handlers.handle_offer_command,
            refuse_invalid=refusals.refuse_invalid,
            dead_letter=dead_letter,
            metrics=metrics,
        )

    @subscribe(
        broker,
        topics.CONTRACTS_COMMANDS,
        settings,
        ownership=contracts_ownership,
    )
    async def on_contract_command(body: bytes, message: KafkaMessage) -> None:
        await consume_command(
            body,
            RecordOrigin.of(message.raw_message),
            adapter=CONTRACT_COMMAND_ADAPTER,
            max_contract_days=settings.max_contract_days,
            handle=handlers.handle_log_time,
            refuse_invalid=refusals.refuse_invalid,
            dead_letter=dead_letter,
            metrics=metrics,
        )

    @subscribe(broker, topics.OFFERS_EVENTS, settings)
    async def on_offer_event(body: bytes, message: KafkaMessage) -> None:
        # Only acceptances matter here: they activate the contract.
        if message.headers.get("type") not in (None, "OfferAccepted"):
            return
        await consume_event(
            body,
            RecordOrigin.of(message.raw_message),
            adapter=OFFER_EVENT_ADAPTER,
            handle=activate_contract,
            metrics=metrics,
        )

    async def activate_contract(event: OfferEvent) -> None:
        if isinstance(event, OfferAccepted):
            await handlers.on_offer_accepted(event)

    async def prepare() -> None:
        await store.ensure_indexes()
        await refusals.outbox.ensure_indexes()

    async def sweep() -> None:
        await every(settings.expiry_sweep_interval_seconds, handlers.sweep_expired, "expiry sweep")

    return service_http_app(
        name=NAME,
        broker=broker,
        mongo=mongo,
        database=settings.database_name,
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=(topics.OFFERS_COMMANDS, topics.CONTRACTS_COMMANDS, *publishers.topics),
        routes=read_routes(store),
        prepare=prepare,
        metrics=metrics,
        outboxes=outboxes,
        background=(relay_forever(outboxes, publish, settings), sweep),
        ownerships=(offers_ownership, contracts_ownership),
    )
