"""One way for every service to take a record off a command topic.

The outcome of a record is exactly one of: handled; refused (readable but invalid: one
CommandRejected); dead-lettered (unreadable, or a bug in our handling). Only a failure of
our own infrastructure (database or broker unreachable) escapes, so that FastStream's
NACK_ON_ERROR rewinds the partition and the record is handled again once it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
)
from pydantic import TypeAdapter, ValidationError
from pymongo.errors import ConnectionFailure, OperationFailure

from contracts import InvalidCommand, UnreadableCommand, parse_command

from . import metrics as outcomes
from .logs import message_context
from .metrics import ServiceMetrics
from .wire import RecordOrigin

log = logging.getLogger(__name__)

# A database or broker outage: back off a little before the record is redelivered. Only
# errors that pass with time belong here; anything else (a query the database refuses,
# say) would be retried forever and stall the partition, so it is dead-lettered instead.
INFRASTRUCTURE_ERRORS = (
    ConnectionFailure,
    KafkaConnectionError,
    KafkaTimeoutError,
    ConnectionError,
    TimeoutError,
)
INFRASTRUCTURE_BACKOFF_SECONDS = 1.0
# FerretDB keeps answering while the PostgreSQL behind it is down or restarting, with an
# InternalError (code 1) that carries PostgreSQL's reason: an outage like any other.
# SQLSTATE class 08 is a lost connection, 57P0x an administrator's shutdown or a start-up.
INTERNAL_ERROR = 1
BACKEND_LOST = (
    "failed to connect",
    "SQLSTATE 08",
    "SQLSTATE 57P0",
    "conn closed",
    "unexpected EOF",
    "connection reset",
)


def is_outage(error: BaseException) -> bool:
    """True for a failure that passes with time: the record is to be handled again."""
    if isinstance(error, INFRASTRUCTURE_ERRORS):
        return True
    return (
        isinstance(error, OperationFailure)
        and error.code == INTERNAL_ERROR
        and any(sign in str(error) for sign in BACKEND_LOST)
    )


DeadLetter = Callable[[bytes, RecordOrigin, str], Awaitable[None]]
RefuseInvalid = Callable[[InvalidCommand, RecordOrigin], Awaitable[None]]


async def consume_command(
    raw: bytes,
    origin: RecordOrigin,
    *,
    adapter: TypeAdapter[Any],
    max_contract_days: int,
    handle: Callable[[Any], Awaitable[None]],
    refuse_invalid: RefuseInvalid,
    dead_letter: DeadLetter,
    metrics: ServiceMetrics,
) -> None:
    started = time.perf_counter()
    today = datetime.now(UTC).date()
    match parse_command(adapter, raw, today=today, max_contract_days=max_contract_days):
        case UnreadableCommand(error=error):
            log.warning("dead-lettered record %s: %s", origin, error)
            await _dead_letter(dead_letter, raw, origin, error)
            outcome, type_ = outcomes.DEAD_LETTERED, "unreadable"
        case InvalidCommand() as invalid:
            with message_context(invalid):
                await refuse_invalid(invalid, origin)
            outcome, type_ = outcomes.INVALID, invalid.command_type or "unknown"
        case command:
            what = f"{command.type} {command.command_id} for {command.key} ({origin})"
            with message_context(command):
                if failure := await _failure(what, handle, command):
                    # A bug must not stall the partition: park the record where a person
                    # sees it.
                    await _dead_letter(dead_letter, raw, origin, f"handler failed: {failure!r}")
            outcome = outcomes.DEAD_LETTERED if failure else outcomes.HANDLED
            type_ = command.type
    metrics.count(origin.topic, type_, outcome, time.perf_counter() - started)


async def _dead_letter(
    dead_letter: DeadLetter, raw: bytes, origin: RecordOrigin, error: str
) -> None:
    """Dead-letters the record; one too large for the dead-letter topic goes there without
    its bytes (the headers say where it still is), so that it cannot stall the partition."""
    try:
        await dead_letter(raw, origin, error)
    except (MessageSizeTooLargeError, RecordTooLargeError):
        log.error(
            "record %s (%d bytes) is too large for the dead-letter topic; dead-lettered "
            "without its bytes: read it at its source offset while the topic retains it",
            origin,
            len(raw),
        )
        await dead_letter(b"", origin, f"{error}; its {len(raw)} bytes were too large to copy")


async def consume_event(
    raw: bytes,
    origin: RecordOrigin,
    *,
    adapter: TypeAdapter[Any],
    handle: Callable[[Any], Awaitable[None]],
    metrics: ServiceMetrics,
) -> None:
    """One record of an events topic. An unreadable event, or one our handling fails on, is
    logged and skipped: events have no dead-letter topic, and a stalled partition would
    hold up every later event."""
    started = time.perf_counter()
    try:
        event = adapter.validate_json(raw)
    except ValidationError as error:
        log.error("skipped an unreadable record %s: %s", origin, error)
        metrics.count(origin.topic, "unreadable", outcomes.SKIPPED, time.perf_counter() - started)
        return
    what = f"{event.type} {event.event_id} ({origin})"
    with message_context(event):
        failure = await _failure(what, handle, event)
        if failure:
            log.error("skipped %s: its effects are lost until it is replayed", what)
    outcome = outcomes.SKIPPED if failure else outcomes.HANDLED
    metrics.count(origin.topic, event.type, outcome, time.perf_counter() - started)


async def _failure(
    what: str, handle: Callable[[Any], Awaitable[None]], message: Any
) -> Exception | None:
    """Runs the handler; what it failed with, when retrying will not mend it. An
    infrastructure outage is raised instead, so the partition is rewound and retried."""
    try:
        await handle(message)
    except Exception as error:
        if is_outage(error):
            log.error(
                "could not handle %s: the database or broker is unavailable (%s); "
                "will retry in %.0fs",
                what,
                str(error).splitlines()[-1][:200],
                INFRASTRUCTURE_BACKOFF_SECONDS,
            )
            await asyncio.sleep(INFRASTRUCTURE_BACKOFF_SECONDS)
            raise
        log.exception("handling %s failed", what)
        return error
    return None
