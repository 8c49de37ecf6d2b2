"""What becomes of a record whose handling fails.

The outcome of a record is exactly one of: handled; refused (readable but invalid: one
CommandRejected); parked (services.runtime.parking); dead-lettered (unreadable, or a bug in
our handling). Only a failure of our own infrastructure (database or broker unreachable)
escapes, so that the subscriber's `nack` rewinds the partition and the record is handled
again once it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
)
from pymongo.errors import ConnectionFailure, OperationFailure

from .batch import BatchWriteConflict
from .uow import NotYetKnown, WriterConflict
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
    WriterConflict,
    BatchWriteConflict,
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
    # What Kafka itself calls retriable: a partition without a leader until the election
    # after a broker is lost, too few in-sync replicas for acks=all, a request timed out.
    if isinstance(error, KafkaError) and error.retriable:
        return True
    return (
        isinstance(error, OperationFailure)
        and error.code == INTERNAL_ERROR
        and any(sign in str(error) for sign in BACKEND_LOST)
    )


DeadLetter = Callable[[bytes, RecordOrigin, str], Awaitable[None]]


async def dead_letter_record(
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


async def pause_for_outage(what: str, error: BaseException) -> None:
    """Says why the record is put back, and waits a little before it is read again."""
    reason = str(error).splitlines()[-1][:200] if str(error) else type(error).__name__
    log.error(
        "could not handle %s: %s; will retry in %.0fs",
        what,
        reason
        if isinstance(error, WriterConflict)
        else f"the database or broker is unavailable ({reason})",
        INFRASTRUCTURE_BACKOFF_SECONDS,
    )
    await asyncio.sleep(INFRASTRUCTURE_BACKOFF_SECONDS)


async def failure_of(what: str, handle: Callable[[], Awaitable[None]]) -> Exception | None:
    """Runs the handler; what it failed with, when retrying will not mend it. An outage is
    raised instead, so the partition is rewound and the record handled again once the
    database or broker is back; so is NotYetKnown, for the caller to park the record."""
    try:
        await handle()
    except NotYetKnown:
        raise
    except Exception as error:
        if is_outage(error):
            await pause_for_outage(what, error)
            raise
        log.exception("handling %s failed", what)
        return error
    return None
