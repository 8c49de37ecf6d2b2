"""messaging_service's FastStream wiring: subscribers, declared publishers, the outbox
relay and the HTTP read API. Everything with a rule in it lives in domain.py and
handlers.py."""

from __future__ import annotations

import logging

from faststream.kafka.annotations import KafkaMessage
from starlette.applications import Starlette

from contracts import NEGOTIATION_COMMAND_ADAPTER, OFFER_EVENT_ADAPTER, topics
from services.runtime.clock import utc_now
from services.runtime.config import Settings, mongo_client
from services.runtime.consumer import (
    consume_command,
    consume_event,
)
from services.runtime.http import service_http_app
from services.runtime.kafka import Publishers, new_broker, subscribe
from services.runtime.metrics import ServiceMetrics
from services.runtime.outbox import relay_forever
from services.runtime.ownership import Ownership
from services.runtime.refusals import Refusals
from services.runtime.wire import RecordOrigin

from .handlers import MessagingHandlers
from .read_api import read_routes
from .store import MongoThreadStore

log = logging.getLogger(__name__)

NAME = "messaging_service"
HTTP_PORT = 8002


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env(NAME, HTTP_PORT)
    metrics = ServiceMetrics(NAME)
    broker = new_broker(settings, log, metrics)
    mongo = mongo_client(settings)
    # Who writes which thread: the owner of its offer's offers.events partition.
    threads_ownership = Ownership(topics.OFFERS_EVENTS)
    store = MongoThreadStore(mongo[settings.database_name], threads_ownership=threads_ownership)
    publishers = Publishers(
        broker,
        (topics.NEGOTIATIONS_EVENTS, topics.COMMANDS_REJECTED, topics.COMMANDS_DEAD_LETTER),
    )
    publish = publishers.publish
    refusals = Refusals(mongo[settings.database_name], publish, utc_now, metrics)
    outboxes = (*store.outboxes, refusals.outbox)
    handlers = MessagingHandlers(
        store,
        publish,
        clock=utc_now,
        max_contract_days=settings.max_contract_days,
        unknown_offer_wait=settings.unknown_offer_wait_seconds,
        refusals=refusals,
        threads=threads_ownership,
    )

    @subscribe(broker, topics.NEGOTIATIONS_COMMANDS, settings)
    async def on_negotiation_command(body: bytes, message: KafkaMessage) -> None:
        await consume_command(
            body,
            RecordOrigin.of(message.raw_message),
            adapter=NEGOTIATION_COMMAND_ADAPTER,
            max_contract_days=settings.max_contract_days,
            handle=handlers.handle_command,
            refuse_invalid=refusals.refuse_invalid,
            dead_letter=publishers.dead_letter,
            metrics=metrics,
        )

    @subscribe(broker, topics.OFFERS_EVENTS, settings, ownership=threads_ownership)
    async def on_offer_event(body: bytes, message: KafkaMessage) -> None:
        await consume_event(
            body,
            RecordOrigin.of(message.raw_message),
            adapter=OFFER_EVENT_ADAPTER,
            handle=handlers.on_offer_event,
            metrics=metrics,
        )

    async def prepare() -> None:
        await store.ensure_indexes()
        await refusals.outbox.ensure_indexes()

    return service_http_app(
        name=NAME,
        broker=broker,
        mongo=mongo,
        database=settings.database_name,
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=(topics.NEGOTIATIONS_COMMANDS, topics.OFFERS_EVENTS, *publishers.topics),
        routes=read_routes(store),
        prepare=prepare,
        metrics=metrics,
        outboxes=outboxes,
        background=(relay_forever(outboxes, publish, settings),),
        ownerships=(threads_ownership,),
    )
