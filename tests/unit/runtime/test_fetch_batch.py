"""A consumer's fetch (services.runtime.kafka.fetch_batch): FastStream's batch loop, less
its sleep after an empty fetch, which held a record arriving meanwhile for as long again."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from faststream.kafka.subscriber.usecase import BatchSubscriber

from services.runtime.kafka import fetch_batch


class Consumer:
    """An AIOKafkaConsumer's getmany, which waits for records itself (up to its timeout)."""

    def __init__(self, fetched: dict[str, list[str]]) -> None:
        self.fetched = fetched
        self.asked: list[tuple[int, int]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[str, list[str]]:
        self.asked.append((timeout_ms, max_records))
        return self.fetched


class Subscriber:
    batch_timeout_ms = 200
    max_records = 7


async def fetch(consumer: Consumer) -> tuple[Any, ...]:
    # As FastStream's consume loop calls it, on any batch subscriber.
    get_msg: Any = BatchSubscriber.get_msg
    result: tuple[Any, ...] = await get_msg(Subscriber(), consumer)
    return result


async def test_an_empty_fetch_is_not_followed_by_a_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(anyio, "sleep", sleep)
    monkeypatch.setattr(asyncio, "sleep", sleep)
    consumer = Consumer({})
    assert await fetch(consumer) == ()
    assert slept == []  # FastStream's own get_msg sleeps batch_timeout_ms here
    assert consumer.asked == [(200, 7)]  # getmany did the waiting, once


async def test_a_fetch_returns_the_records_of_every_partition_in_one_batch() -> None:
    assert await fetch(Consumer({"p0": ["a", "b"], "p1": ["c"]})) == ("a", "b", "c")


def test_every_batch_subscriber_fetches_so() -> None:
    assert BatchSubscriber.__dict__["get_msg"] is fetch_batch
