"""The one-writer rule's pieces: the partition a key lands on, and a rebalance that waits
for the writing in flight."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from services.runtime.ownership import Ownership, partition_for


def test_keys_land_where_kafkas_default_partitioner_puts_them() -> None:
    partitioner = DefaultPartitioner()
    for key in ("offer-1", "a", "x" * 64, "7f2c0c1e-5b6d-4f1e-9b8a-1d2e3f4a5b6c"):
        for count in (1, 3, 12):
            partitions = list(range(count))
            assert partition_for(key, count) == partitioner(key.encode(), partitions, partitions)


async def test_owns_only_the_assigned_partitions() -> None:
    ownership = Ownership("offers.commands")
    ownership.partitions = 3
    keys = [f"offer-{i}" for i in range(30)]
    assert not any(ownership.owns(key) for key in keys)  # nothing assigned yet
    await ownership.on_partitions_assigned({TopicPartition("offers.commands", 1)})
    assert {key for key in keys if ownership.owns(key)} == {
        key for key in keys if partition_for(key, 3) == 1
    }


async def test_a_rebalance_waits_for_the_writing_in_flight() -> None:
    ownership = Ownership("offers.commands")
    ownership.partitions = 1
    await ownership.on_partitions_assigned({TopicPartition("offers.commands", 0)})
    writing = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with ownership.writing("offer-1"):
            writing.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await writing.wait()
    revoke = asyncio.create_task(
        ownership.on_partitions_revoked({TopicPartition("offers.commands", 0)})
    )
    await asyncio.sleep(0.05)
    assert not revoke.done()  # still writing: the partition is not given away yet
    assert not ownership.owns("offer-1")  # but no new background work starts on it
    release.set()
    await asyncio.wait_for(revoke, 1)
    await task


async def test_one_writer_at_a_time_per_aggregate() -> None:
    ownership = Ownership("offers.commands")
    inside: list[str] = []
    overlaps = 0

    async def write(key: str) -> None:
        nonlocal overlaps
        async with ownership.writing(key):
            overlaps += inside.count(key)
            inside.append(key)
            await asyncio.sleep(0.01)
            inside.remove(key)

    await asyncio.gather(*(write("offer-1") for _ in range(5)), write("offer-2"))
    assert overlaps == 0


async def test_each_consumer_of_the_instance_hands_over_only_its_own_partitions() -> None:
    """KAFKA_CONSUMERS_PER_TOPIC: several consumers share one Ownership, each with its own
    partitions; one of them giving its partitions away leaves the others' owned."""
    ownership = Ownership("offers.commands")
    ownership.partitions = 3
    first = {TopicPartition("offers.commands", 0)}
    second = {TopicPartition("offers.commands", 1), TopicPartition("offers.commands", 2)}
    await ownership.on_partitions_assigned(first)
    await ownership.on_partitions_assigned(second)
    keys = {partition_for(key, 3): key for key in (f"offer-{i}" for i in range(30))}
    assert sorted(keys) == [0, 1, 2]
    assert all(ownership.owns(key) for key in keys.values())
    await ownership.on_partitions_revoked(first)
    assert not ownership.owns(keys[0])
    assert ownership.owns(keys[1]) and ownership.owns(keys[2])
