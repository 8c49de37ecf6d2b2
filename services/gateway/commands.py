"""A command from an HTTP request: the acting party from the authenticating proxy's header,
the body read and checked with ``contracts/`` exactly as a service will check it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from contracts import (
    COMMAND_ADAPTERS,
    COMMAND_TOPICS,
    MAX_MESSAGE_BYTES,
    Command,
    FieldError,
    Id,
    InvalidCommand,
    UnreadableCommand,
    parse_command,
)

# Set by the authenticating proxy in front of the gateway, never by the browser in
# production (the page sets it itself only because nothing authenticates on loopback).
ACTOR_HEADER: Final = "X-Actor-Id"

_ID: Final[TypeAdapter[str]] = TypeAdapter(Id)
KNOWN_TYPES: Final = ", ".join(COMMAND_TOPICS)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request carries no command the gateway will publish (an HTTP error)."""

    status: int
    error: str
    message: str
    errors: list[FieldError] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "message": self.message,
            "errors": [e.model_dump() for e in self.errors],
        }


def _invalid(message: str, *errors: FieldError) -> Refusal:
    return Refusal(400, "invalid_command", message, list(errors))


def authenticated_actor(header: str | None) -> str | Refusal:
    if not header:
        return Refusal(
            401,
            "unauthenticated",
            f"no {ACTOR_HEADER} header: the authenticating proxy in front of the gateway "
            "sets it to the signed-in party, on whose behalf every command and read is made",
        )
    try:
        return _ID.validate_python(header)
    except ValidationError:
        return Refusal(401, "unauthenticated", f"the {ACTOR_HEADER} header is not a valid id")


async def read_body(
    chunks: AsyncIterator[bytes], content_length: str | None, limit: int = MAX_MESSAGE_BYTES
) -> bytes | Refusal:
    """The body, read no further than ``limit`` bytes: a larger one is refused as soon as
    it says so (Content-Length) or its bytes pass the limit, never held whole."""
    too_large = Refusal(413, "too_large", f"a command is at most {limit} bytes")
    if content_length is not None:
        if not (content_length.isascii() and content_length.isdigit()):
            return Refusal(400, "bad_request", "Content-Length is not a number of bytes")
        if int(content_length) > limit:
            return too_large
    body, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            return too_large
        body.append(chunk)
    return b"".join(body)


def read_command(
    body: bytes, actor: str, *, today: date, max_contract_days: int
) -> Command | Refusal:
    """The command in ``body``, sent by ``actor``, checked against every rule its own fields
    can break; or why not, with every field error. ``actor_id`` may be left out (it is the
    header's) but, if given, must be the header's; ``command_id`` is made when left out."""
    if len(body) > MAX_MESSAGE_BYTES:
        return Refusal(413, "too_large", f"a command is at most {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(body)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        return Refusal(400, "invalid_json", f"the body is not JSON: {error}")
    except RecursionError:  # e.g. 200,000 `[`: deeper than any command is
        return Refusal(400, "invalid_json", "the body nests arrays or objects too deeply")
    if not isinstance(data, dict):
        return Refusal(400, "invalid_json", "the body must be a JSON object (a command)")
    command_type = data.get("type")
    if command_type not in COMMAND_TOPICS:
        problem = "is required" if command_type is None else f"must be one of {KNOWN_TYPES}"
        return _invalid("not a command", FieldError(field="type", message=problem))
    given_actor = data.setdefault("actor_id", actor)
    if given_actor != actor:
        return Refusal(
            403,
            "actor_mismatch",
            f"actor_id must be the authenticated party {actor!r} ({ACTOR_HEADER}) or left out",
            [FieldError(field="actor_id", message=f"must be {actor!r} or left out")],
        )
    data.setdefault("command_id", str(uuid.uuid4()))
    parsed = parse_command(
        COMMAND_ADAPTERS[COMMAND_TOPICS[command_type]],
        json.dumps(data),
        today=today,
        max_contract_days=max_contract_days,
    )
    if isinstance(parsed, InvalidCommand):
        return _invalid(parsed.message, *parsed.errors)
    if isinstance(parsed, UnreadableCommand):  # pragma: no cover - every such case is above
        return Refusal(400, "invalid_json", parsed.error)
    command: Command = parsed
    return command
