"""A recipient's pushed stream (`GET /notifications/stream?recipient_id=`): each
NotificationCreated for the recipient, with the recipient's own numbers as ids (`seq`,
given by the inbox's one writer). See services.runtime.streams for the live half and the
resume. Notifications stored before they were numbered have no `seq` and are not in the
stream (the inbox API lists them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contracts import NotificationCreated
from services.runtime.documents import Document
from services.runtime.http import BadRequest, own_list, reader
from services.runtime.openapi import (
    NOT_OWN,
    Json,
    event_stream,
    json_read,
    page_parameters,
    query_parameter,
)
from services.runtime.streams import Item, ReadAfter, Streams

from .handlers import STORED_FIELDS, notification_event_id


def notification_item(document: Document) -> Item:
    """A stored notification as its NotificationCreated was published, rebuilt from its
    fields (the event's time is the notification's; its cause the source event)."""
    event = NotificationCreated.model_validate(
        {
            "event_id": notification_event_id(document["notification_id"]),
            "occurred_at": document["created_at"],
            "causation_id": document["source_event_id"],
            **{field: document.get(field) for field in STORED_FIELDS},
        }
    )
    return Item(document["seq"], event.type, event.model_dump_json())


def stream_routes(streams: Streams, notifications: AsyncCollection[Document]) -> list[Route]:
    def read_after(recipient_id: str) -> ReadAfter:
        async def items(after: int) -> AsyncIterator[Item]:
            query = {"recipient_id": recipient_id, "seq": {"$gt": after}}
            async for document in notifications.find(query, sort=[("seq", ASCENDING)]):
                yield notification_item(document)

        return items

    async def notification_stream(request: Request) -> Response:
        actor = reader(request)
        recipient_id = (request.query_params.get("recipient_id") or "").strip()
        if not recipient_id:
            raise BadRequest(
                "recipient_id is required: the stream is one recipient's notifications"
            )
        own_list(request, actor, ("recipient_id",))
        return streams.respond(request, recipient_id, read_after(recipient_id))

    return [Route("/notifications/stream", notification_stream)]


OPENAPI_PATHS: Json = {
    "/notifications": json_read(
        "a recipient's inbox, newest first",
        [
            query_parameter("recipient_id", "whose inbox", required=True),
            query_parameter("unread_only", "true: only unread ones", schema={"type": "boolean"}),
            *page_parameters("cursor"),
        ],
    ),
    "/notifications/preferences": json_read(
        "a recipient's email preferences (none chosen: no email)",
        [query_parameter("recipient_id", "whose preferences", required=True)],
    ),
    "/notifications/stream": event_stream(
        "a recipient's notifications, pushed",
        [query_parameter("recipient_id", "whose notifications", required=True)],
        ["NotificationCreated"],
        refused=NOT_OWN,
    ),
}
