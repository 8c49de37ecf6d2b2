"""notification_service's read API (SPEC §6): a recipient's inbox, newest first."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts import format_utc
from services.runtime.documents import Document
from services.runtime.http import BadRequest, own_list, reader
from services.runtime.pages import page

TRUE, FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no", ""})


def render_notification(document: Document) -> dict[str, Any]:
    return {
        "notification_id": document["notification_id"],
        "recipient_id": document["recipient_id"],
        "kind": document["kind"],
        "offer_id": document.get("offer_id"),
        "contract_id": document.get("contract_id"),
        "title": document["title"],
        "body": document["body"],
        "created_at": format_utc(document["created_at"]),
        "read": bool(document.get("read", False)),
        "source_event_id": document["source_event_id"],
    }


def _flag(request: Request, name: str) -> bool:
    raw = (request.query_params.get(name) or "").strip().lower()
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise BadRequest(f"{name} must be true or false")


def render_preferences(recipient_id: str, inbox: Document | None) -> dict[str, Any]:
    if inbox is None or "chosen_at" not in inbox:  # never chosen: no email
        return {"recipient_id": recipient_id, "email": None, "email_kinds": [], "digest_kinds": []}
    return {
        "recipient_id": recipient_id,
        "email": inbox.get("email"),
        "email_kinds": inbox.get("email_kinds", []),
        "digest_kinds": inbox.get("digest_kinds", []),
        "updated_at": format_utc(inbox["chosen_at"]),
    }


def _recipient(request: Request) -> str:
    recipient_id = (request.query_params.get("recipient_id") or "").strip()
    if not recipient_id:
        raise BadRequest("recipient_id is required")
    return recipient_id


def read_routes(
    notifications: AsyncCollection[Document], inboxes: AsyncCollection[Document]
) -> list[Route]:
    async def get_preferences(request: Request) -> Response:
        actor = reader(request)
        recipient_id = _recipient(request)
        own_list(request, actor, ("recipient_id",))  # their own choices only, like their inbox
        inbox = await inboxes.find_one({"_id": recipient_id})
        return JSONResponse(render_preferences(recipient_id, inbox))

    async def list_notifications(request: Request) -> Response:
        actor = reader(request)
        query: dict[str, Any] = {"recipient_id": _recipient(request)}
        own_list(request, actor, ("recipient_id",))
        if _flag(request, "unread_only"):
            query["read"] = False
        return await page(
            request,
            notifications,
            query,
            order_field="created_at",
            render=render_notification,
        )

    return [
        Route("/notifications/preferences", get_preferences),
        Route("/notifications", list_notifications),
    ]
