"""notification_service's FastStream wiring: subscribers, declared publishers, background
tasks and the HTTP read API. Everything with a rule in it lives in domain.py and handlers.py."""

from __future__ import annotations

import logging

from faststream.kafka.annotations import KafkaMessage
from starlette.applications import Starlette

from contracts import EVENT_ADAPTERS, NOTIFICATION_COMMAND_ADAPTER, topics
from services.runtime.background import every
from services.runtime.clock import utc_now
from services.runtime.config import Settings, mongo_client
from services.runtime.consumer import consume_command, consume_event
from services.runtime.http import service_http_app
from services.runtime.kafka import Publishers, new_broker, subscribe
from services.runtime.metrics import ServiceMetrics
from services.runtime.outbox import relay_forever
from services.runtime.refusals import Refusals
from services.runtime.wire import RecordOrigin

from .handlers import NotificationHandlers
from .read_api import read_routes
from .store import MongoNotificationStore

log = logging.getLogger(__name__)

NAME = "notification_service"
HTTP_PORT = 8003
SOURCE_TOPICS = (
    topics.OFFERS_EVENTS,
    topics.CONTRACTS_EVENTS,
    topics.TALENT_CLOUDS_EVENTS,
    topics.NEGOTIATIONS_EVENTS,
)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env(NAME, HTTP_PORT)
    metrics = ServiceMetrics(NAME)
    broker = new_broker(settings, log, metrics)
    mongo = mongo_client(settings)
    store = MongoNotificationStore(mongo[settings.database_name])
    publishers = Publishers(
        broker,
        (topics.NOTIFICATIONS_EVENTS, topics.COMMANDS_REJECTED, topics.COMMANDS_DEAD_LETTER),
    )
    publish = publishers.publish
    refusals = Refusals(mongo[settings.database_name], publish, utc_now, metrics)
    outboxes = (*store.outboxes, refusals.outbox)
    handlers = NotificationHandlers(
        store,
        publish,
        clock=utc_now,
        reminder_leads_seconds=settings.offer_reminder_leads_seconds,
        unknown_offer_wait=settings.unknown_offer_wait_seconds,
        refusals=refusals,
    )

    def subscribe_events(topic: str) -> None:
        adapter = EVENT_ADAPTERS[topic]

        @subscribe(broker, topic, settings)
        async def on_event(body: bytes, message: KafkaMessage) -> None:
            await consume_event(
                body,
                RecordOrigin.of(message.raw_message),
                adapter=adapter,
                handle=handlers.on_event,
                metrics=metrics,
            )

    for topic in SOURCE_TOPICS:
        subscribe_events(topic)

    @subscribe(broker, topics.NOTIFICATIONS_COMMANDS, settings)
    async def on_command(body: bytes, message: KafkaMessage) -> None:
        await consume_command(
            body,
            RecordOrigin.of(message.raw_message),
            adapter=NOTIFICATION_COMMAND_ADAPTER,
            max_contract_days=settings.max_contract_days,
            handle=handlers.handle_command,
            refuse_invalid=refusals.refuse_invalid,
            dead_letter=publishers.dead_letter,
            metrics=metrics,
        )

    async def prepare() -> None:
        await store.ensure_indexes()
        await refusals.outbox.ensure_indexes()

    async def reminders() -> None:
        await every(
            settings.expiry_sweep_interval_seconds,
            handlers.send_due_reminders,
            "expiry reminders",
        )

    return service_http_app(
        name=NAME,
        broker=broker,
        mongo=mongo,
        database=settings.database_name,
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=(*SOURCE_TOPICS, topics.NOTIFICATIONS_COMMANDS, *publishers.topics),
        routes=read_routes(store),
        prepare=prepare,
        metrics=metrics,
        outboxes=outboxes,
        background=(relay_forever(outboxes, publish, settings), reminders),
    )
