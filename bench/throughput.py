"""Throughput: offers extended end to end per second, beside a plain baseline that does the
minimum.

Our path: N ExtendOffer commands published as fast as the producer takes them to
offers.commands; offer_service (a real process) stores each offer and publishes
OfferExtended; notification_service (a real process) stores the freelancer's notification
and publishes NotificationCreated. The clock runs from the first publish until the last
NotificationCreated of this run is seen on notifications.events (it is published only after
the notification is stored).

The baseline is the least any implementation of the same two hops must do: two plain
aiokafka consumer + producer stages in this process, on topics of its own
(bench.<tag>.commands → bench.<tag>.events → bench.<tag>.notifications), with the
services' Kafka settings (idempotent producer, 50 ms fetch wait). Stage 1 reads the
ExtendOffer commands and per record inserts one offer document and publishes one event;
stage 2 reads those events and per record inserts one notification document and publishes
one NotificationCreated-shaped record keyed by the freelancer. No reads, no indexes beyond
`_id`, no validation. Each record's insert is awaited, then its send; the sends of a fetched
batch are awaited together, then the batch's offsets are committed (our services commit
after every record: FastStream's ack).

An earlier baseline repeated our path's database calls (4 reads + 8 writes per command):
it shared our bottleneck, so "ours at 100 % of it" said nothing about what the path costs.
This one says how far we are from the minimum on the same Kafka and database.

    python -m bench.throughput [--n 1000] [--repeat 2]

Each repeat measures the baseline and ours once, in alternating order (the machine's other
load shifts between them); every pair is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.runtime.kafka import ensure_topics
from services.runtime.kafka_access import client_options

from .common import (
    INFRA,
    Services,
    add_infra_options,
    drop_databases,
    extend_offer,
    hourly_terms,
    mongo,
    run_id,
    run_with_infra,
    say,
    stamp,
    table,
)
from .watch import Watcher

Document = dict[str, Any]
# The services' own Kafka settings (services/runtime/config.py, services/runtime/kafka.py),
# so that the baseline differs from our path only in what it does per record.
FETCH_MAX_WAIT_MS = 50


@dataclass(frozen=True)
class Rate:
    label: str
    n: int
    seconds: float
    publish_seconds: float
    # When each completion (NotificationCreated) arrived, perf_counter seconds, sorted;
    # `started` is the first publish.
    started: float = 0.0
    arrivals: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.n / self.seconds


def encoded_commands(tag: str, n: int) -> list[tuple[bytes, bytes]]:
    terms = hourly_terms()
    out = []
    for i in range(n):
        command = extend_offer(tag, i, terms)
        out.append((command["offer_id"].encode(), json.dumps(command).encode()))
    return out


async def publish_all(topic: str, commands: list[tuple[bytes, bytes]]) -> float:
    """Publishes as fast as the producer takes them; returns the time of the first send."""
    producer = AIOKafkaProducer(
        **client_options(INFRA.kafka), linger_ms=5, max_batch_size=256 << 10
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value, key=key) for key, value in commands]
        await asyncio.gather(*futures)
        return started
    finally:
        await producer.stop()


def our_databases(tag: str) -> list[str]:
    return [f"bench_{service}_{tag}" for service in ("offer_service", "notification_service")]


async def measure_ours(
    tag: str,
    n: int,
    within: float | None = None,
    partial: bool = False,
    label: str = "ours",
    **services: Any,
) -> Rate:
    """N ExtendOffer through offer_service and notification_service (processes). With
    `partial`, what completed within the time limit instead of a TimeoutError."""
    within = within or 300 + n
    commands = encoded_commands(tag, n)
    watcher = Watcher("notifications.events", f"bench-free-{tag}-")
    async with Services(tag, ("offer_service", "notification_service"), **services) as running:
        await watcher.start()
        try:
            say(f"{label}: publishing {n} ExtendOffer commands")
            started = await publish_all("offers.commands", commands)
            published = time.perf_counter() - started
            try:
                last = await watcher.wait_for(
                    n, kind="offer_received", within=within, label=label, since=started
                )
            except TimeoutError:
                if not partial:
                    raise
                # What completed within the time limit.
                n, last = watcher.count("offer_received"), started + within
                say(f"{label}: time limit reached; {n} completed")
            handling = await running.handling_ms()
        finally:
            await watcher.stop()
    for (service, type_), (count, ms) in sorted(handling.items()):
        say(f"{label}: {service} handled {count} {type_} in {ms:.1f} ms each on average")
    arrivals = sorted(t for (_, kind), t in watcher.arrived.items() if kind == "offer_received")
    rate = Rate(label, n, last - started, published, started, arrivals)
    say(f"{label}: {rate.per_second:.1f} offers/s ({n} in {rate.seconds:.1f}s)")
    return rate


# --- the baseline ---------------------------------------------------------------------------


class Baseline:
    """Two plain stages doing the minimum per record: one insert, one publish."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.commands_topic = f"bench.{tag}.commands"
        self.events_topic = f"bench.{tag}.events"
        self.notifications_topic = f"bench.{tag}.notifications"
        self.databases = (f"bench_baseline_offers_{tag}", f"bench_baseline_notifications_{tag}")
        self.client = mongo()
        offers_db, notifications_db = (self.client[name] for name in self.databases)
        self.offers = offers_db["offers"]
        self.notifications = notifications_db["notifications"]
        self.ready = (asyncio.Event(), asyncio.Event())
        self.handled = [0, 0]

    async def prepare(self) -> None:
        await ensure_topics(
            INFRA.kafka, [self.commands_topic, self.events_topic, self.notifications_topic]
        )

    @staticmethod
    def offer_document(command: Document, now: datetime) -> Document:
        """About the size of our offer document: the command's fields, terms, a version."""
        return {
            "_id": command["offer_id"],
            **{k: v for k, v in command.items() if k not in ("type", "terms", "actor_id")},
            "status": "pending",
            "version": 1,
            "expires_at": now + timedelta(days=30),
            "versions": [{"version": 1, "terms": command["terms"], "sent_at": now}],
            "created_at": now,
            "updated_at": now,
            "revision": 1,
        }

    async def offers_stage(self, n: int) -> None:
        """ExtendOffer → one offer inserted → one OfferExtended-like event published."""

        async def handle(raw: bytes, now: datetime) -> tuple[bytes, bytes]:
            command = json.loads(raw)
            await self.offers.insert_one(self.offer_document(command, now))
            event = {
                "type": "OfferExtended",
                "event_id": str(uuid.uuid4()),
                "offer_id": command["offer_id"],
                "client_id": command["client_id"],
                "freelancer_id": command["freelancer_id"],
                "version": 1,
                "terms": command["terms"],
                "occurred_at": now.isoformat(),
            }
            return command["offer_id"].encode(), json.dumps(event).encode()

        await self._stage(0, self.commands_topic, self.events_topic, n, handle)

    async def notifications_stage(self, n: int) -> None:
        """OfferExtended → one notification inserted → one NotificationCreated published."""

        async def handle(raw: bytes, now: datetime) -> tuple[bytes, bytes]:
            event = json.loads(raw)
            freelancer = event["freelancer_id"]
            notification = {
                "type": "NotificationCreated",
                "event_id": str(uuid.uuid4()),
                "notification_id": str(uuid.uuid4()),
                "recipient_id": freelancer,
                "kind": "offer_received",
                "offer_id": event["offer_id"],
                "title": "New offer",
                "body": f"{event['client_id']} sent you an offer: {event['terms']['title']}",
                "created_at": now.isoformat(),
                "source_event_id": event["event_id"],
            }
            await self.notifications.insert_one(
                {"_id": notification["notification_id"], **notification, "read": False}
            )
            return freelancer.encode(), json.dumps(notification).encode()

        await self._stage(1, self.events_topic, self.notifications_topic, n, handle)

    async def _stage(
        self,
        index: int,
        source: str,
        target: str,
        n: int,
        handle: Callable[[bytes, datetime], Awaitable[tuple[bytes, bytes]]],
    ) -> None:
        consumer = AIOKafkaConsumer(
            source,
            **client_options(INFRA.kafka),
            group_id=f"bench-baseline-{self.tag}-{index}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        producer = AIOKafkaProducer(**client_options(INFRA.kafka), enable_idempotence=True)
        await consumer.start()
        await producer.start()
        try:
            while self.handled[index] < n:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                if consumer.assignment():
                    self.ready[index].set()
                sent = []
                for records in batches.values():
                    for record in records:
                        key, value = await handle(record.value, datetime.now(UTC))
                        sent.append(await producer.send(target, value, key=key))
                        self.handled[index] += 1
                await asyncio.gather(*sent)
                if batches:
                    await consumer.commit()
        finally:
            await producer.stop()
            await consumer.stop()

    async def close(self) -> None:
        await self.client.close()


async def measure_baseline(tag: str, n: int) -> Rate:
    label = "baseline"
    baseline = Baseline(tag)
    await baseline.prepare()
    commands = encoded_commands(tag, n)
    watcher = Watcher(baseline.notifications_topic, f"bench-free-{tag}-")
    await watcher.start()
    stages = [
        asyncio.create_task(baseline.offers_stage(n)),
        asyncio.create_task(baseline.notifications_stage(n)),
    ]
    try:
        # Both groups' first assignment, so that the clock does not include it.
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in baseline.ready)), timeout=60)
        say(f"{label}: publishing {n} commands to {baseline.commands_topic}")
        started = await publish_all(baseline.commands_topic, commands)
        published = time.perf_counter() - started
        last = await watcher.wait_for(
            n, kind="offer_received", within=300 + n, label=label, since=started
        )
        await asyncio.gather(*stages)
    finally:
        for stage in stages:
            stage.cancel()
        await asyncio.gather(*stages, return_exceptions=True)
        await watcher.stop()
        await baseline.close()
    arrivals = sorted(t for (_, kind), t in watcher.arrived.items() if kind == "offer_received")
    rate = Rate(label, n, last - started, published, started, arrivals)
    say(f"{label}: {rate.per_second:.1f} offers/s ({n} in {rate.seconds:.1f}s)")
    return rate


def baseline_databases(tag: str) -> list[str]:
    return [f"bench_baseline_offers_{tag}", f"bench_baseline_notifications_{tag}"]


@dataclass(frozen=True)
class Pair:
    """One repeat: the baseline and ours, measured one after the other."""

    repeat: int
    order: str
    baseline: Rate
    ours: Rate


async def run(n: int, repeat: int, keep: bool, tag: str | None = None) -> list[Pair]:
    tag = tag or run_id()
    say(f"throughput: run {tag}, {n} commands per measurement, {repeat} repeat(s)")
    pairs: list[Pair] = []
    databases: list[str] = []
    try:
        for r in range(1, repeat + 1):
            base_tag, ours_tag = f"{tag}b{r}", f"{tag}o{r}"
            databases += [*baseline_databases(base_tag), *our_databases(ours_tag)]
            if r % 2:  # odd repeats: baseline first; even: ours first
                base = await measure_baseline(base_tag, n)
                ours = await measure_ours(ours_tag, n)
                order = "baseline, ours"
            else:
                ours = await measure_ours(ours_tag, n)
                base = await measure_baseline(base_tag, n)
                order = "ours, baseline"
            pairs.append(Pair(r, order, base, ours))
    finally:
        if not keep:
            await drop_databases(databases)
    report(pairs)
    return pairs


def report(pairs: list[Pair]) -> None:
    rows = []
    for pair in pairs:
        for rate in (pair.baseline, pair.ours):
            rows.append(
                (
                    pair.repeat,
                    pair.order,
                    rate.label,
                    rate.n,
                    f"{rate.seconds:.1f}",
                    f"{rate.per_second:.1f}",
                    f"{rate.per_second / pair.baseline.per_second:.0%}",
                    f"{rate.n / rate.publish_seconds:.0f}",
                )
            )
    print(
        table(
            f"Throughput, ExtendOffer → OfferExtended → notification stored ({stamp()})",
            (
                "repeat",
                "order",
                "path",
                "offers",
                "seconds",
                "offers/s",
                "of baseline",
                "publish rate/s",
            ),
            rows,
        )
    )
    print(
        "Baseline per command: 2 hops, each 1 insert + 1 publish, no reads, no secondary "
        "indexes,\n  offsets committed per fetched batch (ours: per record)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="commands per measurement")
    parser.add_argument("--repeat", type=int, default=2, help="baseline + ours pairs")
    add_infra_options(parser)
    args = parser.parse_args()
    run_with_infra(args, run(args.n, args.repeat, args.keep))


if __name__ == "__main__":
    main()
