"""messaging_service's read API (SPEC §6): an offer's thread, newest messages first by page,
oldest first within a page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts import format_utc
from services.runtime.documents import Document
from services.runtime.http import (
    BadRequest,
    decode_cursor,
    encode_cursor,
    not_found,
    page_size,
    reader,
)

from .domain import Thread
from .store import thread_from_document


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value)


def render_message(document: Document, thread: Thread) -> dict[str, Any]:
    item: dict[str, Any] = {
        "message_id": document["message_id"],
        "kind": document["kind"],
        "sender_id": document["sender_id"],
        "text": document.get("text"),
        "sent_at": _time(document["sent_at"]),
    }
    if document["kind"] == "terms_proposal":
        item["changes"] = document["changes"]
        item["differences"] = document["differences"]
        item["answered_by_version"] = thread.answered_by(document["message_id"])
    return item


def _before(request: Request) -> int | None:
    position = decode_cursor(request, "before")
    if position is None:
        return None
    value = position[0] if len(position) == 1 else None
    # A message number is a 64-bit integer: a larger one is no cursor of ours.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise BadRequest("before is not a cursor this API handed out")
    return value


def party_thread(document: Document | None, actor: str) -> Document | None:
    """The thread if the actor is a party to its offer; to a stranger it is unknown (404),
    so a read does not reveal which offers exist."""
    if document is None or actor not in (document["client_id"], document["freelancer_id"]):
        return None
    return document


def read_routes(
    threads: AsyncCollection[Document], messages: AsyncCollection[Document]
) -> list[Route]:
    async def list_messages(request: Request) -> Response:
        actor = reader(request)
        offer_id = request.path_params["offer_id"]
        limit = page_size(request)
        before = _before(request)
        found = party_thread(await threads.find_one({"_id": offer_id}), actor)
        if found is None:
            return not_found("thread for offer", offer_id)
        query: dict[str, Any] = {"offer_id": offer_id}
        if before is not None:
            query["seq"] = {"$lt": before}
        thread = thread_from_document(found)
        cursor = messages.find(query, sort=[("seq", DESCENDING)], limit=limit + 1)
        documents = [document async for document in cursor]
        next_cursor = None
        if len(documents) > limit:
            documents = documents[:limit]
            next_cursor = encode_cursor([documents[-1]["seq"]])
        documents.reverse()
        return JSONResponse(
            {
                "offer_id": offer_id,
                "status": thread.status.value,
                "closed": thread.closed,
                "close_reason": thread.close_reason,
                "version": thread.version,
                "items": [render_message(document, thread) for document in documents],
                "next_cursor": next_cursor,
            }
        )

    return [Route("/threads/{offer_id}/messages", list_messages)]
