"""What consume_command makes of a record, with the broker and the store faked."""

from __future__ import annotations

from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure

from contracts import OFFER_COMMAND_ADAPTER, InvalidCommand
from services.runtime.consumer import consume_command, is_outage
from services.runtime.metrics import ServiceMetrics
from services.runtime.wire import RecordOrigin

ORIGIN = RecordOrigin("offers.commands", 1, 652, b"offer-1")
LIMIT = 1024  # the dead-letter topic's record limit, in this fake


class DeadLetterTopic:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, str]] = []

    async def __call__(self, raw: bytes, origin: RecordOrigin, error: str) -> None:
        if len(raw) > LIMIT:
            raise MessageSizeTooLargeError()
        self.records.append((raw, error))


async def consume(raw: bytes, dead_letter: DeadLetterTopic, metrics: ServiceMetrics) -> None:
    async def handle(_: Any) -> None:
        raise AssertionError("an unreadable record reached the handler")

    async def refuse_invalid(_: InvalidCommand, __: RecordOrigin) -> None:
        raise AssertionError("an unreadable record was refused instead")

    await consume_command(
        raw,
        ORIGIN,
        adapter=OFFER_COMMAND_ADAPTER,
        max_contract_days=180,
        handle=handle,
        refuse_invalid=refuse_invalid,
        dead_letter=dead_letter,
        metrics=metrics,
    )


def dead_lettered(metrics: ServiceMetrics) -> float | None:
    return metrics.registry.get_sample_value(
        "offers_messages_total",
        {
            "service": "offer_service",
            "topic": "offers.commands",
            "type": "unreadable",
            "outcome": "dead_lettered",
        },
    )


async def test_an_unreadable_record_is_dead_lettered_with_its_bytes() -> None:
    dead_letter, metrics = DeadLetterTopic(), ServiceMetrics("offer_service")
    await consume(b"not json", dead_letter, metrics)
    assert [raw for raw, _ in dead_letter.records] == [b"not json"]
    assert dead_lettered(metrics) == 1


async def test_a_record_too_large_to_copy_is_dead_lettered_without_its_bytes() -> None:
    dead_letter, metrics = DeadLetterTopic(), ServiceMetrics("offer_service")
    huge = b"x" * (LIMIT * 4)
    await consume(huge, dead_letter, metrics)  # must not raise: that would stall the partition
    [(raw, error)] = dead_letter.records
    assert raw == b""
    assert f"{len(huge)} bytes were too large to copy" in error
    assert dead_lettered(metrics) == 1


# What FerretDB answered to an insert while its PostgreSQL was stopped (measured here).
POSTGRES_DOWN = OperationFailure(
    "[msg_insert.go:168 handler.(*Handler).MsgInsert] ... failed to connect to "
    "`user=ferretdb database=ferretdb`:\n\t127.0.0.1:54321 (127.0.0.1): dial error: dial tcp "
    "127.0.0.1:54321: connect: connection refused",
    code=1,
)


# And to a query in flight when PostgreSQL was stopped, and one while it started again.
POSTGRES_STOPPING = OperationFailure(
    "[collection.go:109 postgresql.(*collection).Query] FATAL: terminating connection due "
    "to administrator command (SQLSTATE 57P01)",
    code=1,
)
POSTGRES_STARTING = OperationFailure(
    "... failed to connect to `user=ferretdb database=ferretdb`: server error: FATAL: the "
    "database system is starting up (SQLSTATE 57P03)",
    code=1,
)


def test_a_database_behind_ferretdb_going_away_is_an_outage_to_wait_out() -> None:
    assert is_outage(POSTGRES_DOWN)
    assert is_outage(POSTGRES_STOPPING)
    assert is_outage(POSTGRES_STARTING)
    assert is_outage(AutoReconnect("connection closed"))


def test_a_refused_query_is_not_an_outage() -> None:
    # Retrying these would stall the partition forever: they are dead-lettered instead.
    assert not is_outage(OperationFailure("unknown operator: $foo", code=2))
    assert not is_outage(OperationFailure("some internal invariant failed", code=1))
    assert not is_outage(DuplicateKeyError("E11000 duplicate key", code=11000))
