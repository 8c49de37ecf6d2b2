"""Topics a service creates at start-up are reported with their partitions at once, also
when several are created together on a broker that has never seen them (a fresh `make run`:
the co-partitioning check refused to start on partition counts of 0)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.runtime.kafka import ensure_topics
from services.runtime.kafka_access import client_options
from services.runtime.topics import TopicLayout
from tests.infrastructure import Endpoints
from tests.kit import new_id

pytestmark = pytest.mark.integration


async def test_topics_just_created_are_reported_with_their_partitions(infra: Endpoints) -> None:
    names = [new_id("fresh-topic") for _ in range(6)]
    counts = await asyncio.gather(
        ensure_topics(infra.kafka_bootstrap_servers, names[:3]),
        ensure_topics(infra.kafka_bootstrap_servers, names),  # racing for the same topics
    )
    for found in counts:
        assert all(found[name] == TopicLayout().partitions for name in found), found


async def configs_of(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [(_, _, _, _, entries)] = response.resources
        return {entry[0]: entry[1] for entry in entries}
    finally:
        await admin.close()


async def test_new_topics_are_made_as_configured_events_kept_forever(infra: Endpoints) -> None:
    layout = TopicLayout(partitions=2, commands_retention_ms=3_600_000, min_insync_replicas=1)
    events, commands = f"{new_id('t')}.events", f"{new_id('t')}.commands"
    counts = await ensure_topics(infra.kafka_bootstrap_servers, [events, commands], layout)
    assert counts == {events: 2, commands: 2}
    assert (await configs_of(infra.kafka_bootstrap_servers, events))["retention.ms"] == "-1"
    made = await configs_of(infra.kafka_bootstrap_servers, commands)
    assert made["retention.ms"] == "3600000" and made["min.insync.replicas"] == "1"


async def test_an_existing_smaller_topic_is_named_in_one_line_and_left_alone(
    infra: Endpoints, caplog: pytest.LogCaptureFixture
) -> None:
    topic = new_id("small")
    await ensure_topics(infra.kafka_bootstrap_servers, [topic], TopicLayout(partitions=1))
    with caplog.at_level(logging.WARNING, logger="services.runtime.topics"):
        counts = await ensure_topics(
            infra.kafka_bootstrap_servers, [topic], TopicLayout(partitions=3)
        )
    assert counts == {topic: 1}
    [line] = [r.getMessage() for r in caplog.records if topic in r.getMessage()]
    assert "1 partition(s)" in line and "configured: 3" in line and "--alter" in line
