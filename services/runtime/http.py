"""The read API's JSON conventions: errors, page sizes and cursors."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


class StartupError(RuntimeError):
    """The service cannot start; the message says why and what to do."""


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def not_found(what: str, ident: str) -> JSONResponse:
    return error_response(404, "not_found", f"no {what} with id {ident!r}")


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def page_size(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
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
    except (binascii.Error, ValueError):
        raise BadRequest(f"{name} is not a cursor this API handed out") from None
    if not isinstance(position, list):
        raise BadRequest(f"{name} is not a cursor this API handed out")
    return position


async def bad_request(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return error_response(400, "bad_request", exc.message)


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, "http_error", str(exc.detail))
