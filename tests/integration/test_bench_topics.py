"""A bench run deletes the topics it made when it ends, and no others; with --keep it
deletes none (on a shared broker they piled up: 242 bench topics on a developer's)."""

from __future__ import annotations

import argparse
import asyncio
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from bench import common
from services.runtime.kafka import ensure_topics
from services.runtime.kafka_access import client_options
from tests.infrastructure import Endpoints
from tests.kit import new_id

pytestmark = pytest.mark.integration

DELETED_WITHIN_S = 15  # the broker deletes a topic asynchronously


async def listed(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def bench_run(infra: Endpoints, monkeypatch: pytest.MonkeyPatch, keep: bool) -> list[str]:
    """A bench run on the shared broker that makes two topics of its own; returns them."""
    monkeypatch.setattr(common.INFRA, "kafka", infra.kafka_bootstrap_servers)
    monkeypatch.setattr(common, "RUN_TAGS", set())
    made: list[str] = []

    async def work() -> None:
        tag = common.run_id()
        made.extend([f"bench-offer_service-{tag}.internal", f"bench.{tag}p0.notifications"])
        await ensure_topics(infra.kafka_bootstrap_servers, made)

    common.run_with_infra(argparse.Namespace(shared_infra=True, keep=keep), work())
    return made


def test_a_bench_run_deletes_the_topics_it_made_and_no_others(
    infra: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    another_runs = new_id("bench-offer_service-another-run")
    asyncio.run(ensure_topics(infra.kafka_bootstrap_servers, [another_runs]))
    made = bench_run(infra, monkeypatch, keep=False)
    deadline = time.monotonic() + DELETED_WITHIN_S
    while (left := asyncio.run(listed(infra.kafka_bootstrap_servers)) & set(made)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert not left, f"still on the broker: {left}"
    assert another_runs in asyncio.run(listed(infra.kafka_bootstrap_servers))


def test_with_keep_a_bench_run_leaves_its_topics(
    infra: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = bench_run(infra, monkeypatch, keep=True)
    assert set(made) <= asyncio.run(listed(infra.kafka_bootstrap_servers))
