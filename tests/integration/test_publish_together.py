"""Publishers.publish_together on the real broker: a batch handed over at once, every entry
acknowledged when it returns, each key's entries in the order given, counted by topic, and
none sent of a batch naming a topic the service does not declare."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker

from services.runtime.config import bootstrap_list
from services.runtime.kafka import Publishers, ensure_topics
from services.runtime.kafka_access import client_options
from services.runtime.metrics import ServiceMetrics
from services.runtime.outbox import OutboxEntry
from tests.infrastructure import Endpoints
from tests.kit import new_id

pytestmark = pytest.mark.integration


async def test_a_batch_is_all_acknowledged_and_each_key_keeps_its_order(
    infra: Endpoints,
) -> None:
    topic = f"test-{new_id('together')}.internal"
    await ensure_topics(infra.kafka_bootstrap_servers, [topic])
    broker = KafkaBroker(bootstrap_list(infra.kafka_bootstrap_servers), enable_idempotence=True)
    metrics = ServiceMetrics("test")
    publishers = Publishers(broker, [topic], metrics)
    await broker.start()
    entries = [
        OutboxEntry(topic, f"offer-{n % 7}", "ExpireOffer", f"ask-{n}", f'{{"n": {n}}}')
        for n in range(2000)
    ]
    try:
        await publishers.publish_together(entries)
        with pytest.raises(ValueError, match="not a topic this service declares: elsewhere"):
            await publishers.publish_together(
                [*entries[:3], replace(entries[3], topic="elsewhere")]
            )
    finally:
        await broker.stop()
    published = metrics.registry.get_sample_value(
        "offers_published_total", {"service": "test", "topic": topic}
    )
    assert published == len(entries)  # the refused batch sent none of its entries

    consumer = AIOKafkaConsumer(
        topic, **client_options(infra.kafka_bootstrap_servers), auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: dict[str, list[str]] = defaultdict(list)
    try:
        async with asyncio.timeout(30):
            while sum(map(len, seen.values())) < len(entries):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        assert record.key is not None
                        seen[record.key.decode()].append(dict(record.headers)["event_id"].decode())
    finally:
        await consumer.stop()
    expected: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        expected[entry.key].append(entry.message_id)
    assert seen == expected
