"""messaging_service, declared: what it reads, what it writes, and its read API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from starlette.applications import Starlette

from contracts import (
    NEGOTIATION_COMMAND_ADAPTER,
    OFFER_EVENT_ADAPTER,
    PostMessage,
    ProposeTerms,
    topics,
)
from services.runtime.app import Built, Kit, service_app
from services.runtime.config import Settings
from services.runtime.decide import Outcome, Placed
from services.runtime.documents import Documents
from services.runtime.service import (
    Kind,
    On,
    ServiceTable,
    TypeHandler,
    each_offer_event,
    internal_on,
    numbers,
)
from services.runtime.streams import Streams
from services.runtime.uow import Repository

from .domain import Thread
from .handlers import MessagingHandlers, message_of
from .read_api import read_routes
from .store import ThreadStore
from .stream import OPENAPI_PATHS, stream_routes

NAME = "messaging_service"
HTTP_PORT = 8002


def threads(handlers: MessagingHandlers) -> Repository[Thread]:
    return handlers.store.threads


def messages(handlers: MessagingHandlers) -> Documents:
    return handlers.store.messages


Said = TypeVar("Said", PostMessage, ProposeTerms)


def spoken(
    type_: type[Said],
    rule: Callable[[MessagingHandlers, Thread | None, Placed[Said], datetime], Outcome[Thread]],
) -> TypeHandler:
    """What a party says: numbered by its command's place, written once beside the thread,
    and found again by the producer's message_id. The thread keeps no command ids: a long
    thread would make them a large document rewritten with every message."""
    return numbers(type_, rule, state=threads, once=messages, once_id=message_of)


TABLE = ServiceTable(
    NAME,
    HTTP_PORT,
    consumes=(
        On(
            topics.OFFERS_EVENTS,
            OFFER_EVENT_ADAPTER,
            Kind.EVENT,
            each_offer_event(MessagingHandlers.on_offer_event, state=threads),
            releases=lambda event: event.offer_id,  # a thread's first event: its commands go on
        ),
        On(
            topics.NEGOTIATIONS_COMMANDS,
            NEGOTIATION_COMMAND_ADAPTER,
            Kind.COMMAND,
            (
                spoken(PostMessage, MessagingHandlers.post_message),
                spoken(ProposeTerms, MessagingHandlers.propose_terms),
            ),
        ),
        internal_on(NAME),
    ),
    publishes=(
        topics.NEGOTIATIONS_EVENTS,
        topics.COMMANDS_REJECTED,
        topics.COMMANDS_DEAD_LETTER,
    ),
)


def build(kit: Kit) -> Built:
    store = ThreadStore(kit.documents("threads"), kit.documents("messages", kept=False))
    handlers = MessagingHandlers(
        store, kit.uow, kit.refusals, max_contract_days=kit.settings.max_contract_days
    )
    streams = Streams(kit.settings, topics.NEGOTIATIONS_EVENTS, kit.metrics)
    threads, messages = kit.database["threads"], kit.database["messages"]
    return Built(
        handlers,
        [*read_routes(threads, messages), *stream_routes(streams, threads, messages)],
        store.ensure_indexes,
        outboxes=(store.threads.documents, store.messages),
        background=(streams.run,),
        streams=streams,
        openapi_paths=OPENAPI_PATHS,
    )


def create_app(settings: Settings | None = None) -> Starlette:
    return service_app(TABLE, settings or Settings.from_env(NAME, HTTP_PORT), build)
