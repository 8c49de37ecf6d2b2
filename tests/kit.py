"""What the integration and e2e tests drive the system with: a plain aiokafka producer for
commands, a probe that watches topics, and a service app run in-process for one test."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from starlette.applications import Starlette

from services.runtime.kafka import ensure_topics
from services.runtime.kafka_access import client_options


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def today() -> date:
    return datetime.now(UTC).date()


def hourly_terms(**changes: Any) -> dict[str, Any]:
    start = today() + timedelta(days=5)
    terms: dict[str, Any] = {
        "title": "Checkout redesign",
        "description": "Redesign the checkout flow as agreed in chat.",
        "contract_type": "hourly",
        "currency": "USD",
        "hourly_rate": "45.00",
        "weekly_limit_hours": 30,
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=90)).isoformat(),
        "po_number": "PO-2026-0042",
        "custom_fields": {"cost_center": "R&D-12", "billable": True},
    }
    terms.update(changes)
    return terms


def fixed_terms(**changes: Any) -> dict[str, Any]:
    start = today() + timedelta(days=5)
    terms: dict[str, Any] = {
        "title": "Logo",
        "description": "A logo in three variants.",
        "contract_type": "fixed",
        "total_amount": "800.00",
        "milestones": [
            {"description": "Sketches", "amount": "500.00"},
            {"description": "Final files", "amount": "300.00"},
        ],
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=30)).isoformat(),
    }
    terms.update(changes)
    return terms


def as_(actor: str) -> dict[str, str]:
    """The headers of a read made on behalf of ``actor`` (every read names its reader)."""
    return {"X-Actor-Id": actor}


def command(type_: str, actor_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "command_id": str(uuid.uuid4()), "actor_id": actor_id, **fields}


@dataclass
class Parties:
    offer_id: str = field(default_factory=lambda: new_id("offer"))
    client_id: str = field(default_factory=lambda: new_id("client"))
    freelancer_id: str = field(default_factory=lambda: new_id("free"))
    job_id: str = field(default_factory=lambda: new_id("job"))

    @property
    def talent_cloud_id(self) -> str:
        """The client's own Talent Cloud: a cloud belongs to the client that first names it,
        so two tests' clients never share one."""
        return f"tc-{self.client_id}"

    def extend(self, terms: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        return command(
            "ExtendOffer",
            self.client_id,
            offer_id=self.offer_id,
            job_id=self.job_id,
            proposal_id=new_id("prop"),
            client_id=self.client_id,
            freelancer_id=self.freelancer_id,
            terms=terms or hourly_terms(talent_cloud_id=self.talent_cloud_id),
            **fields,
        )


class Producer:
    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(**client_options(bootstrap), linger_ms=0)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, topic: str, message: dict[str, Any] | bytes, key: str) -> None:
        value = message if isinstance(message, bytes) else json.dumps(message).encode()
        await self._producer.send_and_wait(topic, value, key=key.encode())


@dataclass(frozen=True)
class Seen:
    topic: str
    key: str | None
    headers: dict[str, str]
    value: Any
    raw: bytes


class Probe:
    """Reads topics from their current end: sees what is published after it started."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._bootstrap = bootstrap
        self._consumer = AIOKafkaConsumer(**client_options(bootstrap), fetch_max_wait_ms=50)
        self._topics = topics
        self.seen: list[Seen] = []
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        # Create the topics first: on a brand-new broker a topic the services have not made
        # yet has no partitions to watch, and would be watched on partition 0 only.
        counts = await ensure_topics(self._bootstrap, self._topics)
        partitions = [TopicPartition(t, n) for t in self._topics for n in range(counts[t])]
        await self._consumer.start()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for partition in partitions:
            await self._consumer.position(partition)  # resolve "end" now, not lazily
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for record in self._consumer:
            raw = record.value or b""
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            self.seen.append(
                Seen(
                    record.topic,
                    record.key.decode() if record.key else None,
                    {k: v.decode() for k, v in record.headers},
                    value,
                    raw,
                )
            )
            self._arrived.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()

    def matching(self, predicate: Callable[[Seen], bool]) -> list[Seen]:
        return [seen for seen in self.seen if predicate(seen)]

    async def wait_for(
        self, predicate: Callable[[Seen], bool], *, count: int = 1, within: float = 20
    ) -> list[Seen]:
        """The first `count` records that match; fails the test after `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = self.matching(predicate)
            if len(found) >= count:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"waited {within}s for {count} matching record(s), saw {len(found)}; "
                    f"last records: {[(s.topic, s.value) for s in self.seen[-5:]]}"
                )
            self._arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=min(remaining, 0.5))

    async def quiet(self, seconds: float = 1.5) -> None:
        """Lets anything still in flight arrive, so a test can assert that nothing more did."""
        await asyncio.sleep(seconds)


def of_type(type_: str, **fields: Any) -> Callable[[Seen], bool]:
    def predicate(seen: Seen) -> bool:
        value = seen.value
        return (
            isinstance(value, dict)
            and value.get("type") == type_
            and all(value.get(name) == expected for name, expected in fields.items())
        )

    return predicate


@asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Runs a service app's lifespan in this event loop; yields a client for its read API."""
    async with app.router.lifespan_context(app):
        starting = app.state.starting
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not starting.done:  # the service starts once its database and Kafka answer
            assert starting.failed is None, starting.failed
            assert loop.time() < deadline, f"not started after 60s: {starting.waiting}"
            await asyncio.sleep(0.05)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client
