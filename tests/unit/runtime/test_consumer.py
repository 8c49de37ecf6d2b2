"""What consume_command makes of a record, with the broker and the store faked."""

from __future__ import annotations

from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

from contracts import OFFER_COMMAND_ADAPTER, InvalidCommand
from services.runtime.consumer import consume_command
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
