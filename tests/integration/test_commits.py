"""A service commits the offsets of what it handled on an interval (KAFKA_COMMIT_INTERVAL_MS,
services.runtime.kafka.Commits), not after each batch; and always before a partition is
given to another instance, and when it stops. Checked on the real broker, by the group's
committed offsets."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from contracts import topics
from services.offer_service.app import create_app
from services.runtime.config import Settings
from services.runtime.kafka_access import client_options
from tests.conftest import fresh_settings
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, of_type, running

pytestmark = pytest.mark.integration

NEVER_MS = 3_600_000  # an interval no test waits out


async def committed(settings: Settings, topic: str) -> int:
    """The group's committed offsets of `topic`, summed over its partitions."""
    admin = AIOKafkaAdminClient(**client_options(settings.kafka_bootstrap_servers))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.kafka_group_id)
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic)


async def extend_one(producer: Producer, probe: Probe) -> None:
    parties = Parties()
    await producer.send(topics.OFFERS_COMMANDS, parties.extend(), key=parties.offer_id)
    await probe.wait_for(of_type("OfferExtended", offer_id=parties.offer_id))


async def test_handled_offsets_wait_for_the_interval_and_are_committed_on_stop(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    settings = await fresh_settings(infra, "offer_service", kafka_commit_interval_ms=NEVER_MS)
    start = await committed(settings, topics.OFFERS_COMMANDS)
    async with running(create_app(settings)):
        await extend_one(producer, probe)
        await asyncio.sleep(1)  # a commit after the batch would be there by now
        assert await committed(settings, topics.OFFERS_COMMANDS) == start
    assert await committed(settings, topics.OFFERS_COMMANDS) == start + 1


async def test_handled_offsets_are_committed_on_the_interval(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    settings = await fresh_settings(infra, "offer_service", kafka_commit_interval_ms=200)
    start = await committed(settings, topics.OFFERS_COMMANDS)
    async with running(create_app(settings)):
        await extend_one(producer, probe)
        deadline = asyncio.get_running_loop().time() + 10
        while await committed(settings, topics.OFFERS_COMMANDS) == start:
            assert asyncio.get_running_loop().time() < deadline, "not committed within 10 s"
            await asyncio.sleep(0.1)
        assert await committed(settings, topics.OFFERS_COMMANDS) == start + 1


async def test_handled_offsets_are_committed_before_a_partition_is_given_away(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    first = await fresh_settings(
        infra, "offer_service", kafka_commit_interval_ms=NEVER_MS, kafka_instance_id="first"
    )
    second = replace(first, kafka_instance_id="second")
    start = await committed(first, topics.OFFERS_COMMANDS)
    async with running(create_app(first)):
        for _ in range(3):  # over more than one partition, most likely
            await extend_one(producer, probe)
        assert await committed(first, topics.OFFERS_COMMANDS) == start
        # A second instance joins the group: the first gives its partitions up, and commits
        # what it handled of them first, long before its own interval would.
        async with running(create_app(second)):
            deadline = asyncio.get_running_loop().time() + 30
            while await committed(first, topics.OFFERS_COMMANDS) != start + 3:
                assert asyncio.get_running_loop().time() < deadline, "not committed on rebalance"
                await asyncio.sleep(0.2)
