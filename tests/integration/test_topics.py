"""Topics a service creates at start-up are reported with their partitions at once, also
when several are created together on a broker that has never seen them (a fresh `make run`:
the co-partitioning check refused to start on partition counts of 0)."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.kafka import TOPIC_PARTITIONS, ensure_topics
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
        assert all(found[name] == TOPIC_PARTITIONS for name in found), found
