"""The read API's JSON conventions: errors, page sizes and cursors."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contracts import Id

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


class StartupError(RuntimeError):
    """The service cannot start; the message says why and what to do."""


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    # SPEC's error shape: a code, a sentence for a person, and the field errors (none here).
    body = {"error": code, "message": message, "errors": []}
    return JSONResponse(body, status_code=status, headers=headers)


def not_found(what: str, ident: str) -> JSONResponse:
    return error_response(404, "not_found", f"no {what} with id {ident!r}")


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Refused(Exception):
    """A read the reader may not make: 401 (no actor) or 403 (a list of someone else's)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# The party on whose behalf a read is made: set by the gateway from the signed-in actor, by
# the CLI from OFFERS_ACTOR. A read API answers nobody without one (a second line behind
# the gateway's own check).
ACTOR_HEADER = "X-Actor-Id"
_ID: TypeAdapter[str] = TypeAdapter(Id)


def reader(request: Request) -> str:
    """The actor of a read, or Refused(401) saying what to send."""
    header = request.headers.get(ACTOR_HEADER)
    if not header:
        raise Refused(
            401,
            "unauthenticated",
            f"no {ACTOR_HEADER} header: every read is made on behalf of a party; send the "
            "signed-in party's id (the gateway does; the CLI sends OFFERS_ACTOR)",
        )
    try:
        return _ID.validate_python(header)
    except ValidationError:
        message = f"the {ACTOR_HEADER} header is not a valid id"
        raise Refused(401, "unauthenticated", message) from None


def id_filter(request: Request, name: str) -> str | None:
    """A query parameter that names an id, or None; one that no id can be (a NUL, 5,000
    characters) is a 400 here rather than an error in the database."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return _ID.validate_python(raw)
    except ValidationError:
        raise BadRequest(f"{name} is not an id: {raw[:80]!r}") from None


def own_list(request: Request, actor: str, names: tuple[str, ...]) -> None:
    """A list is the reader's own: one of ``names`` (the party filters) must name the actor.
    Refused up front, from the query alone, so the answer reveals nothing stored; the other
    filters then only narrow a list that is the actor's already."""
    if any(request.query_params.get(name) == actor for name in names):
        return
    given = [
        f"{name}={request.query_params[name]}" for name in names if name in request.query_params
    ]
    whose = " or ".join(f"{name}={actor}" for name in names)
    raise Refused(
        403,
        "forbidden",
        f"you ({actor}) may list your own items only"
        + (f", not those of {' and '.join(given)}" if given else "")
        + f": give {whose}",
    )


def page_size(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    # isascii: "²" is a digit to str.isdigit, but not a number to int().
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def encode_cursor(position: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


def decode_cursor(request: Request, name: str = "cursor") -> list[Any] | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (binascii.Error, ValueError, RecursionError):
        raise BadRequest(f"{name} is not a cursor this API handed out") from None
    if not isinstance(position, list):
        raise BadRequest(f"{name} is not a cursor this API handed out")
    return position


async def bad_request(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return error_response(400, "bad_request", exc.message)


async def refused(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return error_response(exc.status, exc.code, exc.message)


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, "http_error", str(exc.detail))
