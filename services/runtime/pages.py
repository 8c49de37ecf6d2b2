"""Keyset pagination over (a time field, _id), newest first, for the read APIs.

A cursor is the position of the last item served; the next page starts strictly after it,
so items added meanwhile never shift a page (as skip/limit would).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from starlette.requests import Request
from starlette.responses import JSONResponse

from .http import BadRequest, decode_cursor, encode_cursor, page_size

Document = dict[str, Any]


async def page(
    request: Request,
    collection: AsyncCollection[Document],
    query: Mapping[str, Any],
    *,
    order_field: str,
    render: Callable[[Document], dict[str, Any]],
    newest_first: bool = True,
) -> JSONResponse:
    limit = page_size(request)
    filters: dict[str, Any] = dict(query)
    position = decode_cursor(request)
    if position is not None:
        try:
            at, last_id = datetime.fromisoformat(position[0]), position[1]
        except (IndexError, TypeError, ValueError):
            raise BadRequest("cursor is not a cursor this API handed out") from None
        # An _id this API handed out: a string the database can hold (no NUL).
        if not isinstance(last_id, str) or "\x00" in last_id or len(last_id) > 200:
            raise BadRequest("cursor is not a cursor this API handed out")
        beyond = "$lt" if newest_first else "$gt"
        filters["$or"] = [
            {order_field: {beyond: at}},
            {order_field: at, "_id": {beyond: last_id}},
        ]
    direction = DESCENDING if newest_first else ASCENDING
    cursor = collection.find(
        filters, sort=[(order_field, direction), ("_id", direction)], limit=limit + 1
    )
    documents = [document async for document in cursor]
    next_cursor = None
    if len(documents) > limit:
        documents = documents[:limit]
        last = documents[-1]
        next_cursor = encode_cursor([last[order_field].isoformat(), last["_id"]])
    return JSONResponse({"items": [render(d) for d in documents], "next_cursor": next_cursor})
