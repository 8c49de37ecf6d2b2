"""Throughput: offers extended end to end per second, beside a bare aiokafka baseline.

Our path: N ExtendOffer commands published as fast as the producer takes them to
offers.commands; offer_service (a real process) stores each offer and publishes
OfferExtended; notification_service (a real process) stores the freelancer's notification
and publishes NotificationCreated. The clock runs from the first publish until the last
NotificationCreated of this run is seen on notifications.events (it is published only after
the notification is stored).

The baseline: one plain aiokafka consumer + producer that reads the same commands from a
topic of its own and, per command, makes the same database calls as our path against the
same FerretDB (see BASELINE_CALLS), then publishes one event. It commits offsets after each
fetched batch (our services commit after every record: FastStream's ack).

    python -m bench.throughput [--n 500] [--profiles before,after]

The default N is small because on FerretDB 1.24/SQLite every revision-conditioned write
scans its collection: the cost per command grows with N, so a run is quadratic in N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.notification_service.store import MongoNotificationStore
from services.offer_service.store import MongoOfferStore
from services.runtime.kafka import ensure_topics
from services.runtime.outbox import MongoOutbox

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

# What the services do to the database per ExtendOffer, counted from the code
# (offer_service handlers/store, runtime refusals/outbox, notification_service handlers/store):
BASELINE_CALLS = (
    ("offer_service", "read", "rejections.find_one(_id=command_id)  (Refusals.already_refused)"),
    ("offer_service", "read", "offers.find_one(_id=offer_id)  (store.get_offer)"),
    ("offer_service", "write", "offers.insert_one(offer + outbox)  (store.create_offer)"),
    ("offer_service", "write", "offers.update_one(clear outbox)  (MongoOutbox.mark_published)"),
    ("notification_service", "read", "offers.find_one  (projection: store.get_offer)"),
    ("notification_service", "write", "offers.insert_one  (projection: store.put_offer)"),
    ("notification_service", "write", "reminders.update_many  (cancel_reminders, older versions)"),
    ("notification_service", "write", "reminders.insert_one x2  (72 h and 24 h reminders)"),
    ("notification_service", "write", "notifications.insert_one(+ outbox)  (add_notification)"),
    ("notification_service", "write", "notifications.update_one(clear outbox)  (mark_published)"),
    ("notification_service", "read", "parked_messages.find(offer_id)  (_unpark)"),
)
READS, WRITES = 4, 8

# The service environment of each profile. "before" is the code as it was before tuning
# (fetch wait 50 ms hard-coded, linger 0); "after" the tuned knob (a 10 ms fetch wait,
# services/runtime/config.py). Linger stays 0 in both: every publish is
# awaited before the outbox is cleared, so lingering only adds to each hop.
PROFILES: dict[str, dict[str, str]] = {
    "before": {
        "KAFKA_FETCH_MAX_WAIT_MS": "50",
        "KAFKA_LINGER_MS": "0",
    },
    "after": {
        "KAFKA_FETCH_MAX_WAIT_MS": "10",
        "KAFKA_LINGER_MS": "0",
    },
}


@dataclass(frozen=True)
class Rate:
    label: str
    n: int
    seconds: float
    publish_seconds: float

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
        bootstrap_servers=INFRA.kafka, linger_ms=5, max_batch_size=256 << 10
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value, key=key) for key, value in commands]
        await asyncio.gather(*futures)
        return started
    finally:
        await producer.stop()


async def measure_ours(
    tag: str,
    n: int,
    profile: str,
    within: float | None = None,
    partial: bool = False,
    **services: Any,
) -> Rate:
    label = f"ours ({profile})"
    within = within or 300 + n
    commands = encoded_commands(tag, n)
    watcher = Watcher("notifications.events", f"bench-free-{tag}-")
    async with Services(
        tag, ("offer_service", "notification_service"), PROFILES[profile], **services
    ) as running:
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
    rate = Rate(label, n, last - started, published)
    say(f"{label}: {rate.per_second:.0f} offers/s ({n} in {rate.seconds:.1f}s)")
    return rate


# --- the baseline ---------------------------------------------------------------------------


class Baseline:
    """A bare consumer + producer doing our path's database calls, one command at a time."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.commands_topic = f"bench.{tag}.commands"
        self.events_topic = f"bench.{tag}.events"
        self.databases = (f"bench_baseline_offers_{tag}", f"bench_baseline_notifications_{tag}")
        self.client = mongo()
        offers_db, notifications_db = (self.client[name] for name in self.databases)
        self.rejections = offers_db["rejections"]
        self.offers = offers_db["offers"]
        self.projection = notifications_db["offers"]
        self.reminders = notifications_db["reminders"]
        self.notifications = notifications_db["notifications"]
        self.parked = notifications_db["parked_messages"]
        self.offer_store = MongoOfferStore(offers_db)
        self.notification_store = MongoNotificationStore(notifications_db)
        self.handled = 0

    async def prepare(self) -> None:
        await ensure_topics(INFRA.kafka, [self.commands_topic, self.events_topic])
        # The same indexes as the services (each index is work on every insert).
        await self.offer_store.ensure_indexes()
        await MongoOutbox(self.rejections).ensure_indexes()
        await self.notification_store.ensure_indexes()

    async def handle(self, raw: bytes, producer: AIOKafkaProducer) -> asyncio.Future[Any]:
        command = json.loads(raw)
        now = datetime.now(UTC)
        offer_id, freelancer = command["offer_id"], command["freelancer_id"]
        event_id = str(uuid.uuid4())
        # offer_service's part
        await self.rejections.find_one({"_id": command["command_id"]})
        await self.offers.find_one({"_id": offer_id})
        extended = {"type": "OfferExtended", "event_id": event_id, **command}
        outbox = [{"topic": "x", "key": offer_id, "payload": json.dumps(extended, default=str)}]
        await self.offers.insert_one(
            {
                "_id": offer_id,
                **{k: v for k, v in command.items() if k not in ("type", "terms", "actor_id")},
                "status": "pending",
                "version": 1,
                "expires_at": now + timedelta(days=30),
                "versions": [{"version": 1, "terms": command["terms"], "sent_at": now}],
                "created_at": now,
                "updated_at": now,
                "revision": 1,
                "handled": [command["command_id"]],
                "outbox": outbox,
                "outbox_since": now,
            }
        )
        await self.offers.update_one(
            {"_id": offer_id, "revision": 1},
            {"$set": {"outbox": []}, "$unset": {"outbox_since": ""}},
        )
        # notification_service's part
        await self.projection.find_one({"_id": offer_id})
        await self.projection.insert_one(
            {
                "_id": offer_id,
                "client_id": command["client_id"],
                "freelancer_id": freelancer,
                "status": "pending",
                "version": 1,
                "title": command["terms"]["title"],
                "summary": "$45.00/h",
                "expires_at": now + timedelta(days=30),
                "revision": 1,
            }
        )
        await self.reminders.update_many(
            {"offer_id": offer_id, "state": "pending", "version": {"$lt": 1}},
            {"$set": {"state": "cancelled", "closed_at": now}},
        )
        for lead in (72, 24):
            await self.reminders.insert_one(
                {
                    "_id": f"{offer_id}-{lead}",
                    "offer_id": offer_id,
                    "version": 1,
                    "lead_seconds": lead * 3600,
                    "due_at": now + timedelta(days=30, hours=-lead),
                    "freelancer_id": freelancer,
                    "created_at": now,
                    "state": "pending",
                }
            )
        notification = {
            "type": "NotificationCreated",
            "notification_id": f"n-{offer_id}",
            "recipient_id": freelancer,
            "kind": "offer_received",
            "offer_id": offer_id,
            "title": "New offer",
            "body": f"{command['client_id']} sent you an offer: {command['terms']['title']}",
            "created_at": now.isoformat(),
            "source_event_id": event_id,
        }
        payload = json.dumps(notification)
        await self.notifications.insert_one(
            {
                "_id": notification["notification_id"],
                **notification,
                "read": False,
                "revision": 1,
                "outbox": [{"topic": "x", "key": freelancer, "payload": payload}],
                "outbox_since": now,
            }
        )
        await self.notifications.update_one(
            {"_id": notification["notification_id"], "revision": 1},
            {"$set": {"outbox": []}, "$unset": {"outbox_since": ""}},
        )
        [_ async for _ in self.parked.find({"offer_id": offer_id})]
        self.handled += 1
        future: asyncio.Future[Any] = await producer.send(
            self.events_topic, payload.encode(), key=freelancer.encode()
        )
        return future

    async def consume(self, n: int) -> None:
        consumer = AIOKafkaConsumer(
            self.commands_topic,
            bootstrap_servers=INFRA.kafka,
            group_id=f"bench-baseline-{self.tag}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        producer = AIOKafkaProducer(bootstrap_servers=INFRA.kafka, enable_idempotence=True)
        await consumer.start()
        await producer.start()
        try:
            while self.handled < n:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                sent = []
                for records in batches.values():
                    for record in records:
                        sent.append(await self.handle(record.value, producer))
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
    watcher = Watcher(baseline.events_topic, f"bench-free-{tag}-")
    await watcher.start()
    worker = asyncio.create_task(baseline.consume(n))
    try:
        await asyncio.sleep(3)  # the group's first assignment
        say(f"{label}: publishing {n} commands to {baseline.commands_topic}")
        started = await publish_all(baseline.commands_topic, commands)
        published = time.perf_counter() - started
        last = await watcher.wait_for(
            n, kind="offer_received", within=300 + n, label=label, since=started
        )
        await worker
    finally:
        worker.cancel()
        await watcher.stop()
        await baseline.close()
    rate = Rate(label, n, last - started, published)
    say(f"{label}: {rate.per_second:.0f} commands/s ({n} in {rate.seconds:.1f}s)")
    return rate


def databases_of(tag: str, profiles: list[str]) -> list[str]:
    names = [f"bench_baseline_offers_{tag}x", f"bench_baseline_notifications_{tag}x"]
    for profile in profiles:
        for service in ("offer_service", "notification_service"):
            names.append(f"bench_{service}_{tag}{profile[0]}")
    return names


async def run(n: int, profiles: list[str], keep: bool, tag: str | None = None) -> dict[str, Rate]:
    tag = tag or run_id()
    say(f"throughput: run {tag}, {n} commands per measurement, profiles {profiles}")
    results: dict[str, Rate] = {}
    try:
        results["baseline"] = await measure_baseline(f"{tag}x", n)
        for profile in profiles:
            results[profile] = await measure_ours(f"{tag}{profile[0]}", n, profile)
    finally:
        if not keep:
            await drop_databases(databases_of(tag, profiles))
    base = results["baseline"].per_second
    rows = [
        (
            rate.label,
            rate.n,
            f"{rate.seconds:.1f}",
            f"{rate.per_second:.0f}",
            f"{rate.per_second / base:.0%}",
            f"{rate.n / rate.publish_seconds:.0f}",
        )
        for rate in results.values()
    ]
    print(
        table(
            f"Throughput, ExtendOffer → OfferExtended → notification stored ({stamp()})",
            ("path", "offers", "seconds", "offers/s", "of baseline", "publish rate/s"),
            rows,
        )
    )
    print(
        f"Baseline per command: {READS} reads + {WRITES} writes + 1 event published, "
        "counted from the services' code:"
    )
    for service, kind, call in BASELINE_CALLS:
        print(f"  - {service:21s} {kind:5s} {call}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="commands per measurement")
    parser.add_argument("--profiles", default="before,after")
    parser.add_argument(
        "--keep", action="store_true", help="keep the bench databases (and its own infra)"
    )
    add_infra_options(parser)
    args = parser.parse_args()
    run_with_infra(args, run(args.n, args.profiles.split(","), args.keep))


if __name__ == "__main__":
    main()
