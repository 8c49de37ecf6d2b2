"""Commits: which handled offsets go to the broker, and when (services.runtime.kafka)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError

from services.runtime.config import MAX_COMMIT_INTERVAL_MS, ConfigError, Settings
from services.runtime.kafka import Commits

P0 = TopicPartition("offers.commands", 0)
P1 = TopicPartition("offers.commands", 1)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int


@dataclass(eq=False)  # told apart by identity, as aiokafka's are
class Consumer:
    """aiokafka's consumer, as far as Commits uses it."""

    held: set[TopicPartition] = field(default_factory=lambda: {P0, P1})
    committed: list[dict[TopicPartition, int]] = field(default_factory=list)
    failing: bool = False
    # Set: a commit waits for it (a commit in flight while a batch is handled).
    gate: asyncio.Event | None = None

    def assignment(self) -> set[TopicPartition]:
        return self.held

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise IllegalStateError("the group is rebalancing")
        self.committed.append(dict(offsets))


class Inner(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.calls.append("revoked")

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.calls.append("assigned")


def records(partition: int, *offsets: int) -> list[Any]:
    return [Record("offers.commands", partition, offset) for offset in offsets]


async def test_nothing_goes_to_the_broker_until_a_commit_and_then_the_next_offsets() -> None:
    commits, consumer = Commits(1.0, Inner()), Consumer()
    commits.handled(consumer, records(0, 4, 5, 6))
    commits.handled(consumer, records(1, 9))
    assert consumer.committed == []
    await commits.commit()
    assert consumer.committed == [{P0: 7, P1: 10}]
    await commits.commit()  # nothing handled since
    assert consumer.committed == [{P0: 7, P1: 10}]


async def test_a_failed_commit_is_tried_again_with_what_was_handled_since() -> None:
    commits, consumer = Commits(1.0, Inner()), Consumer(failing=True)
    commits.handled(consumer, records(0, 4))
    await commits.commit()
    consumer.failing = False
    commits.handled(consumer, records(0, 5))
    await commits.commit()
    assert consumer.committed == [{P0: 6}]


async def test_what_is_handled_while_a_commit_is_in_flight_waits_for_the_next() -> None:
    consumer = Consumer(gate=asyncio.Event())
    commits = Commits(1.0, Inner())
    commits.handled(consumer, records(0, 4))
    committing = asyncio.create_task(commits.commit())
    await asyncio.sleep(0)
    commits.handled(consumer, records(0, 5))
    consumer.gate.set()  # type: ignore[union-attr]
    await committing
    await commits.commit()
    assert consumer.committed == [{P0: 5}, {P0: 6}]


async def test_partitions_given_away_are_committed_first_and_then_forgotten() -> None:
    inner = Inner()
    commits, consumer = Commits(1.0, inner), Consumer(failing=True)
    commits.handled(consumer, records(0, 4))
    commits.handled(consumer, records(1, 7))
    await commits.on_partitions_revoked({P0})  # the commit fails: P0 is forgotten anyway
    assert inner.calls == ["revoked"]
    consumer.failing = False
    await commits.on_partitions_revoked({P1})
    assert consumer.committed == [{P1: 8}]
    await commits.commit()
    assert consumer.committed == [{P1: 8}]


async def test_partitions_no_longer_held_are_dropped_and_the_others_committed() -> None:
    commits, consumer = Commits(1.0, Inner()), Consumer()
    commits.handled(consumer, records(0, 4))
    commits.handled(consumer, records(1, 7))
    consumer.held = {P1}
    await commits.commit()
    assert consumer.committed == [{P1: 8}]


async def test_a_consumer_first_heard_of_while_a_commit_is_in_flight_is_committed_next() -> None:
    first, second = Consumer(gate=asyncio.Event()), Consumer()
    commits = Commits(1.0, Inner())
    commits.handled(first, records(0, 4))
    committing = asyncio.create_task(commits.commit())
    await asyncio.sleep(0)
    commits.handled(second, records(1, 7))  # another consumer's first batch
    first.gate.set()  # type: ignore[union-attr]
    await committing
    await commits.commit()
    assert (first.committed, second.committed) == ([{P0: 5}], [{P1: 8}])


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("0", "KAFKA_COMMIT_INTERVAL_MS=0 must be at least 1"),
        ("-5", "KAFKA_COMMIT_INTERVAL_MS=-5 must be at least 1"),
        ("1.5", "KAFKA_COMMIT_INTERVAL_MS='1.5' is not a whole number"),
        ("9" * 30, f"must be at most {MAX_COMMIT_INTERVAL_MS}"),
    ],
)
def test_a_commit_interval_the_service_cannot_use_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, raw: str, says: str
) -> None:
    monkeypatch.setenv("KAFKA_COMMIT_INTERVAL_MS", raw)
    with pytest.raises(ConfigError, match=re.escape(says)):
        Settings.from_env("offer_service", 8001)


def test_the_commit_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_COMMIT_INTERVAL_MS", "250")
    assert Settings.from_env("offer_service", 8001).kafka_commit_interval_ms == 250
    monkeypatch.delenv("KAFKA_COMMIT_INTERVAL_MS")
    assert Settings.from_env("offer_service", 8001).kafka_commit_interval_ms == 1000
