"""The one call a service makes per command: read it from bytes and check every rule.

A service consuming a commands topic does::

    match parse_command(OFFER_COMMAND_ADAPTER, raw, today=..., max_contract_days=...):
        case UnreadableCommand(error=error):  # -> commands.dead-letter, bytes unchanged
            ...
        case InvalidCommand() as invalid:  # -> commands.rejected, key invalid.key
            publish(invalid.rejection(event_id=..., occurred_at=...))
        case ExtendOffer() as command:  # valid: shape AND terms rules checked
            ...

Rules that need state (authorisation, offer status, ``ProposeTerms`` against the current
terms: ``contracts.terms.proposed_terms``) are the service's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final, TypeVar

from pydantic import TypeAdapter, ValidationError

from contracts.base import Command, Id
from contracts.commands import COMMAND_TYPES, ChangeOffer, CommandType, ExtendOffer
from contracts.errors import FieldError, errors_from_validation
from contracts.events import CommandRejected, RejectionCode
from contracts.terms import raw_terms_violations, terms_violations

__all__ = [
    "MAX_MESSAGE_BYTES",
    "InvalidCommand",
    "UnreadableCommand",
    "command_violations",
    "parse_command",
    "valid_id",
]

MAX_MESSAGE_BYTES: Final = 1024 * 1024
"""Larger messages are not read (dead-lettered), SPEC §4."""


def command_violations(
    command: Command, *, today: date, max_contract_days: int
) -> list[FieldError]:
    """The rules of a well-formed command that its own fields can break (SPEC §3/§4):
    the terms rules of ``ExtendOffer``/``ChangeOffer``, and client ≠ freelancer."""
    errors: list[FieldError] = []
    if isinstance(command, ExtendOffer) and command.client_id == command.freelancer_id:
        errors.append(FieldError(field="freelancer_id", message="must differ from client_id"))
    if isinstance(command, ExtendOffer | ChangeOffer):
        errors += terms_violations(command.terms, today=today, max_contract_days=max_contract_days)
    return errors


@dataclass(frozen=True, slots=True)
class UnreadableCommand:
    """Not a command at all (not JSON, not an object, no or unknown ``type``, too large):
    send the bytes unchanged to ``commands.dead-letter`` with ``error`` in a header."""

    error: str


@dataclass(frozen=True, slots=True)
class InvalidCommand:
    """A command of a known type that breaks rules: answer with ``CommandRejected``
    (code ``invalid_command``) keyed by ``key``. Ids are ``None`` when not valid ids."""

    command_type: CommandType
    command_id: str | None
    actor_id: str | None
    key: str | None
    errors: list[FieldError] = field(default_factory=list)

    @property
    def message(self) -> str:
        n = len(self.errors)
        return f"{self.command_type} is invalid: {n} problem{'s' if n != 1 else ''}"

    def rejection(self, *, event_id: str, occurred_at: datetime) -> CommandRejected:
        """The ``CommandRejected`` event (code ``invalid_command``) for this command."""
        return CommandRejected(
            event_id=event_id,
            occurred_at=occurred_at,
            causation_id=self.command_id,
            command_id=self.command_id,
            command_type=self.command_type,
            actor_id=self.actor_id,
            code=RejectionCode.INVALID_COMMAND,
            message=self.message,
            errors=self.errors,
        )


_ID_ADAPTER: Final[TypeAdapter[str]] = TypeAdapter(Id)
_UNREADABLE: Final = frozenset(
    {
        "json_invalid",
        "json_type",
        "dict_type",
        "model_type",
        "union_tag_invalid",
        "union_tag_not_found",
    }
)
_C = TypeVar("_C", bound=Command)
"""The commands of one topic."""


def valid_id(value: object) -> str | None:
    """`value` when it is a valid id (contracts.base.Id), else None."""
    try:
        return _ID_ADAPTER.validate_python(value)
    except ValidationError:
        return None


def _invalid(
    raw: bytes | str, shape: list[FieldError], *, today: date, max_contract_days: int
) -> InvalidCommand:
    data: dict[str, Any] = json.loads(raw)  # the slow path only: pydantic has read it already
    command_type: CommandType = data["type"]
    errors = list(shape)
    if command_type in ("ExtendOffer", "ChangeOffer"):
        errors += raw_terms_violations(
            data.get("terms"), today=today, max_contract_days=max_contract_days
        )
    client, freelancer = data.get("client_id"), data.get("freelancer_id")
    if command_type == "ExtendOffer" and isinstance(client, str) and client == freelancer:
        errors.append(FieldError(field="freelancer_id", message="must differ from client_id"))
    unique = [e for i, e in enumerate(errors) if e not in errors[:i]]
    return InvalidCommand(
        command_type=command_type,
        command_id=valid_id(data.get("command_id")),
        actor_id=valid_id(data.get("actor_id")),
        key=valid_id(data.get(COMMAND_TYPES[command_type].KEY_FIELD)),
        errors=unique,
    )


def parse_command(
    adapter: TypeAdapter[_C],
    raw: bytes | str,
    *,
    today: date,
    max_contract_days: int,
) -> _C | InvalidCommand | UnreadableCommand:
    """Read one command from a topic's bytes and check every rule it can be checked against.

    ``adapter`` is the topic's (``OFFER_COMMAND_ADAPTER``, ... or ``COMMAND_ADAPTERS[topic]``).
    Returns the command when valid, :class:`InvalidCommand` listing every shape error and every
    terms rule broken (SPEC §3), or :class:`UnreadableCommand` for the dead-letter topic.
    ``today`` is the UTC date; ``max_contract_days`` the compliance policy.
    """
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode())
    if size > MAX_MESSAGE_BYTES:
        return UnreadableCommand(f"message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        command = adapter.validate_json(raw)
    except ValidationError as exc:
        details = exc.errors(include_url=False)
        root = [e for e in details if e["loc"] == () and e["type"] in _UNREADABLE]
        if root:
            return UnreadableCommand(root[0]["msg"])
        try:
            return _invalid(
                raw, errors_from_validation(exc), today=today, max_contract_days=max_contract_days
            )
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as error:
            return UnreadableCommand(f"unreadable after validation failed: {error!r}")
    errors = command_violations(command, today=today, max_contract_days=max_contract_days)
    if errors:
        return InvalidCommand(
            command_type=command.type,  # type: ignore[arg-type]
            command_id=command.command_id,
            actor_id=command.actor_id,
            key=command.key,
            errors=errors,
        )
    return command
