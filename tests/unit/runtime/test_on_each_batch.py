"""A fetched batch reaches the service (services.runtime.kafka.on_each_batch) without a
worker thread: FastStream runs a sync dependency, such as a `KafkaMessage` parameter, in
one for every batch."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber

from services.runtime.kafka import on_each_batch


def no_thread(*_: Any, **__: Any) -> Any:
    raise AssertionError("a batch was handed over through a worker thread")


async def test_each_batch_reaches_the_service_as_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = KafkaBroker()
    subscriber = broker.subscriber("offers.commands", batch=True)
    assert isinstance(subscriber, BatchSubscriber)
    handled: list[KafkaMessage] = []

    async def handle(message: KafkaMessage) -> None:
        handled.append(message)

    on_each_batch(broker, subscriber, handle)
    async with TestKafkaBroker(broker) as test_broker:
        monkeypatch.setattr(anyio.to_thread, "run_sync", no_thread)
        await test_broker.publish_batch(b"first", b"second", topic="offers.commands")

    assert len(handled) == 1
    assert [record.value for record in handled[0].raw_message] == [b"first", b"second"]


async def test_a_message_parameter_would_have_taken_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reason for on_each_batch, kept true: should FastStream stop resolving the message
    in a thread, this fails, and the plain parameter can come back."""
    broker = KafkaBroker()

    @broker.subscriber("offers.commands", batch=True)
    async def on_batch(body: list[bytes], message: KafkaMessage) -> None:
        pass

    async with TestKafkaBroker(broker) as test_broker:
        monkeypatch.setattr(anyio.to_thread, "run_sync", no_thread)
        with pytest.raises(AssertionError, match="worker thread"):
            await test_broker.publish_batch(b"first", topic="offers.commands")
