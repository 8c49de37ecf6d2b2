"""A thread's pushed stream (`GET /threads/{offer_id}/stream`): each MessagePosted,
TermsProposed and ThreadClosed of the offer's thread, with the thread's own numbers as ids
(a message's `seq`; ThreadClosed the number after the last message). See
services.runtime.streams for the live half and the resume."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contracts import MessagePosted, TermsProposed, ThreadClosed
from services.rules import derived_id
from services.runtime.documents import Document
from services.runtime.http import not_found, reader
from services.runtime.openapi import (
    Json,
    event_stream,
    json_read,
    page_parameters,
    path_parameter,
)
from services.runtime.streams import Item, ReadAfter, Streams, resume_position

from .domain import message_event_id
from .read_api import party_thread
from .store import thread_from_document


def message_item(document: Document) -> Item:
    """A stored message as its event was published, rebuilt from its fields, which hold all
    of it (the event's time is its `sent_at`; its cause the command)."""
    common = {
        "event_id": message_event_id(document["offer_id"], document["message_id"]),
        "occurred_at": document["sent_at"],
        "causation_id": document["command_id"],
        "offer_id": document["offer_id"],
        "message_id": document["message_id"],
        "sender_id": document["sender_id"],
        "text": document.get("text"),
        "sent_at": document["sent_at"],
    }
    event: MessagePosted | TermsProposed
    if document["kind"] == "terms_proposal":
        changes = {"changes": document["changes"], "differences": document["differences"]}
        event = TermsProposed.model_validate({**common, **changes})
    else:
        event = MessagePosted.model_validate(common)
    return Item(document["seq"], event.type, event.model_dump_json())


def closed_item(document: Document) -> Item | None:
    """The thread's ThreadClosed, if it is closed, rebuilt from the thread. A thread closed
    before its cause was kept (`closed_by`) names the ThreadClosed itself as the cause."""
    thread = thread_from_document(document)
    if not thread.closed or thread.close_reason is None:
        return None
    event_id = derived_id("thread-closed", thread.offer_id)
    event = ThreadClosed(
        event_id=event_id,
        occurred_at=thread.closed_at or document["updated_at"],
        causation_id=thread.closed_by or event_id,
        offer_id=thread.offer_id,
        reason=thread.close_reason,
    )
    return Item(thread.closed_seq, event.type, event.model_dump_json())


def stream_routes(
    streams: Streams, threads: AsyncCollection[Document], messages: AsyncCollection[Document]
) -> list[Route]:
    def read_after(offer_id: str) -> ReadAfter:
        async def items(after: int) -> AsyncIterator[Item]:
            # The thread first: once it is closed, every message is stored already, so the
            # ThreadClosed read here cannot come before a message read after it.
            found = await threads.find_one({"_id": offer_id})
            if found is None:
                return  # no thread, no messages yet: the first item will come live
            query = {"offer_id": offer_id, "seq": {"$gt": after}}
            async for document in messages.find(query, sort=[("seq", ASCENDING)]):
                yield message_item(document)
            closed = closed_item(found)
            if closed is not None and closed.position is not None and closed.position > after:
                yield closed

        return items

    async def thread_stream(request: Request) -> Response:
        actor = reader(request)
        offer_id = request.path_params["offer_id"]
        resume_position(request)  # a malformed resume point is 400 whoever asks
        # The parties are known once the offer's first event is: until then the stream is
        # refused as an unknown one, so it cannot be opened ahead of its parties' check (the
        # page polls and tries again). An offer's parties never change, so the check at
        # opening holds for every item pushed after it.
        if party_thread(await threads.find_one({"_id": offer_id}), actor) is None:
            return not_found("thread for offer", offer_id)
        return streams.respond(request, offer_id, read_after(offer_id))

    return [Route("/threads/{offer_id}/stream", thread_stream)]


OPENAPI_PATHS: Json = {
    "/threads/{offer_id}/messages": json_read(
        "an offer's thread: newest messages first by page, oldest first within one",
        [
            path_parameter("offer_id", "the offer"),
            *page_parameters("before"),
        ],
        single=True,
    ),
    "/threads/{offer_id}/stream": event_stream(
        "an offer's thread, pushed, to its parties; 404 until the offer is known here",
        [path_parameter("offer_id", "the offer")],
        ["MessagePosted", "TermsProposed", "ThreadClosed"],
    ),
}
