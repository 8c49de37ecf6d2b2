"""Throughput: offers extended end to end per second, beside two plain pipelines that do
the minimum, all three measured in the same run on the same Kafka and FerretDB.

Ours: N ExtendOffer commands published as fast as the producer takes them to
offers.commands; offer_service (a real process) stores each offer and publishes
OfferExtended; notification_service (a real process) stores the freelancer's notification
and publishes NotificationCreated. The clock runs from the first publish until the last
NotificationCreated of this run is seen on notifications.events (it is published only after
the notification is stored).

The plain pipelines are the least any implementation of the same two hops must do: two
aiokafka consumer + producer stages in this process, on topics of their own
(bench.<tag>.commands → bench.<tag>.events → bench.<tag>.notifications), with the services'
Kafka settings (idempotent producer, 50 ms fetch wait). Stage 1 reads the ExtendOffer
commands and per record inserts one offer document and publishes one OfferExtended-like
event; stage 2 reads those events and per record inserts one notification document and
publishes one NotificationCreated-shaped record keyed by the freelancer. No reads, no
indexes beyond `_id`, no validation. Each stage fetches up to 500 records at a time
(getmany) and commits the batch's offsets once after handling it. They differ only in the
step that handles a fetched batch:

  (a) plain per-record: for each record, its insert_one awaited, then its publish awaited
      (send_and_wait), the next record only after that;
  (b) plain batched: one insert_many of the whole batch, then every send issued and the
      acknowledgements awaited together.

The goals: ours at least 2x (a) and at least 0.25x (b).

    python -m bench.throughput [--n 1000] [--repeat 2]

Each repeat measures the three once, the order turning with each repeat (the machine's
other load shifts between them); every repeat's figures and ratios are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo.asynchronous.collection import AsyncCollection

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
from .cpu import BENCH, SERVERS, CpuClock, spent_between
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
    # CPU seconds each part spent from the first publish to the last arrival (bench.cpu).
    cpu: dict[str, float] = field(default_factory=dict)
    # The database commands each service sent meanwhile: (service, command, collection).
    commands: Counter[tuple[str, str, str]] = field(default_factory=Counter)

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
    around: Callable[[Services], AbstractAsyncContextManager[object]] | None = None,
    **services: Any,
) -> Rate:
    """N ExtendOffer through offer_service and notification_service (processes). With
    `partial`, what completed within the time limit instead of a TimeoutError. `around`
    wraps the publishing and waiting, given the running services (bench.profile samples
    them)."""
    within = within or 300 + n
    commands = encoded_commands(tag, n)
    watcher = Watcher("notifications.events", f"bench-free-{tag}-")
    async with Services(tag, ("offer_service", "notification_service"), **services) as running:
        await watcher.start()
        try:
            clock = CpuClock({p.name: p.process.pid for p in running.processes if p.process})
            async with around(running) if around else nullcontext():
                say(f"{label}: publishing {n} ExtendOffer commands")
                commands_before = await running.database_commands()
                steps_before = await running.batch_steps()
                before = clock.read()
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
                cpu = spent_between(before, clock.read())
            handling = await running.handling_ms()
            sent = await running.database_commands() - commands_before
            steps = await running.batch_steps()
        finally:
            await watcher.stop()
    for (service, type_), (count, ms) in sorted(handling.items()):
        say(f"{label}: {service} handled {count} {type_} in {ms:.1f} ms each on average")
    for line in batch_lines(steps_before, steps):
        say(f"{label}: {line}")
    arrivals = sorted(t for (_, kind), t in watcher.arrived.items() if kind == "offer_received")
    rate = Rate(label, n, last - started, published, started, arrivals, cpu, sent)
    say(f"{label}: {rate.per_second:.1f} offers/s ({n} in {rate.seconds:.1f}s)")
    return rate


STEPS_IN_ORDER = ("deciding", "checking", "storing", "publishing", "finishing")


def batch_lines(
    before: dict[tuple[str, str], tuple[float, float]],
    after: dict[tuple[str, str], tuple[float, float]],
) -> list[str]:
    """Per service: its batches in the run, their mean size and the mean milliseconds of each
    step of a batch (services.runtime.metrics, offers_batch_seconds)."""

    def spent(service: str, step: str) -> tuple[float, float]:
        count, total = after.get((service, step), (0.0, 0.0))
        count_before, total_before = before.get((service, step), (0.0, 0.0))
        return count - count_before, total - total_before

    lines = []
    for service in sorted({service for service, _ in after}):
        batches, records = spent(service, "records")
        if not batches:
            continue
        means = ", ".join(
            f"{step} {1000 * total / count:.1f}"
            for step in STEPS_IN_ORDER
            for count, total in [spent(service, step)]
            if count
        )
        lines.append(
            f"{service}: {batches:.0f} batches of {records / batches:.0f} records on average; "
            f"ms per batch: {means}"
        )
    return lines


# --- the plain baselines --------------------------------------------------------------------

# The document to insert (none for a stage that only re-keys), the record's key and value.
Output = tuple[Document | None, bytes, bytes]


def offer_output(raw: bytes, now: datetime) -> Output:
    """ExtendOffer → an offer document about the size of ours (the command's fields, terms, a
    version) and an OfferExtended-like event keyed by the offer."""
    command = json.loads(raw)
    document = {
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
    return document, command["offer_id"].encode(), json.dumps(event).encode()


def repartition_output(raw: bytes, now: datetime) -> Output:
    """OfferExtended → the same event keyed by its freelancer, nothing stored."""
    return None, json.loads(raw)["freelancer_id"].encode(), raw


def notification_output(raw: bytes, now: datetime) -> Output:
    """OfferExtended → the freelancer's notification document and a NotificationCreated-shaped
    record keyed by the freelancer."""
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
    document = {"_id": notification["notification_id"], **notification, "read": False}
    return document, freelancer.encode(), json.dumps(notification).encode()


def thread_output(raw: bytes, now: datetime) -> Output:
    """OfferExtended → the offer's chat thread, as messaging_service projects it (the parties,
    the terms, the status), nothing sent on."""
    event = json.loads(raw)
    thread = {
        "_id": event["offer_id"],
        **{k: event[k] for k in ("offer_id", "client_id", "freelancer_id", "version", "terms")},
        "status": "pending",
        "created_at": now,
        "updated_at": now,
    }
    return thread, event["offer_id"].encode(), raw


Make = Callable[[bytes, datetime], Output]
Step = Callable[
    [AsyncCollection[Document] | None, AIOKafkaProducer, str, list[Output]], Awaitable[None]
]


async def per_record(
    collection: AsyncCollection[Document] | None,
    producer: AIOKafkaProducer,
    target: str,
    outputs: list[Output],
) -> None:
    """(a) One record at a time: its insert_one awaited, then its publish (send_and_wait)."""
    for document, key, value in outputs:
        if collection is not None and document is not None:
            await collection.insert_one(document)
        await producer.send_and_wait(target, value, key=key)


async def store_all(collection: AsyncCollection[Document] | None, outputs: list[Output]) -> None:
    """The outputs' documents in one insert_many (none for a stage that stores nothing)."""
    documents = [document for document, _, _ in outputs if document is not None]
    if collection is not None and documents:
        await collection.insert_many(documents)


async def batched(
    collection: AsyncCollection[Document] | None,
    producer: AIOKafkaProducer,
    target: str,
    outputs: list[Output],
) -> None:
    """(b) The fetched batch at once: one insert_many, then every send issued and the
    acknowledgements awaited together."""
    await store_all(collection, outputs)
    sent = [await producer.send(target, value, key=key) for _, key, value in outputs]
    await asyncio.gather(*sent)


STEPS: dict[str, Step] = {"plain per-record": per_record, "plain batched": batched}


@dataclass(frozen=True)
class Stage:
    """A plain stage: it reads `source`, makes each record's output, stores the documents in
    `collection` (if any) and sends the records on to `target` (if any)."""

    source: str
    target: str | None
    make: Make
    collection: AsyncCollection[Document] | None


class Plain:
    """Plain stages, each doing the least its hop needs, with `step` per fetched batch:
    commands → offer document + event; events → notification document + NotificationCreated.
    With `repartition`, a stage between them only re-keys each event by its freelancer (no
    write), as a per-recipient order needs (ours: notification_service's Notify). After the
    step, one offset commit for the batch; or, with `commit_every` seconds, the offsets
    committed at most that often (Kafka Streams' commit.interval.ms, as ours). With `beside`,
    one more stage, in a consumer group of its own, reads the events and stores each offer's
    thread, sending nothing on: what messaging_service adds to an ExtendOffer, off its path
    to the notification but on the same cores."""

    def __init__(
        self,
        tag: str,
        step: Step,
        commit_every: float = 0.0,
        repartition: bool = False,
        beside: bool = False,
    ) -> None:
        self.tag = tag
        self.step = step
        self.commit_every = commit_every
        self.client = mongo()
        offers, notifications = (self.client[name] for name in plain_databases(tag))
        path: list[tuple[str, Make, AsyncCollection[Document] | None]] = [
            ("commands", offer_output, offers["offers"]),
            *([("events", repartition_output, None)] if repartition else []),
            (
                "notify" if repartition else "events",
                notification_output,
                notifications["notifications"],
            ),
        ]
        names = [name for name, _, _ in path] + ["notifications"]
        self.topics = [f"bench.{tag}.{name}" for name in names]
        self.stages = [
            Stage(self.topics[i], self.topics[i + 1], make, collection)
            for i, (_, make, collection) in enumerate(path)
        ]
        if beside:  # off the path: the events in, a thread stored, nothing sent on
            self.stages.append(Stage(self.topics[1], None, thread_output, offers["threads"]))
        self.ready = [asyncio.Event() for _ in self.stages]

    async def stage(self, index: int, n: int) -> None:
        stage = self.stages[index]
        consumer = AIOKafkaConsumer(
            stage.source,
            **client_options(INFRA.kafka),
            group_id=f"bench-plain-{self.tag}-{index}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        producer = (
            None
            if stage.target is None
            else AIOKafkaProducer(**client_options(INFRA.kafka), enable_idempotence=True)
        )
        await consumer.start()
        if producer is not None:
            await producer.start()
        try:
            handled = 0
            committed = time.monotonic()
            while handled < n:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                if consumer.assignment():
                    self.ready[index].set()
                records = [record for batch in batches.values() for record in batch]
                if not records:
                    continue
                now = datetime.now(UTC)
                outputs = [stage.make(record.value, now) for record in records]
                if producer is None or stage.target is None:
                    await store_all(stage.collection, outputs)
                else:
                    await self.step(stage.collection, producer, stage.target, outputs)
                handled += len(records)
                if time.monotonic() - committed >= self.commit_every or handled >= n:
                    await consumer.commit()
                    committed = time.monotonic()
        finally:
            if producer is not None:
                await producer.stop()
            await consumer.stop()

    async def close(self) -> None:
        await self.client.close()

    @asynccontextmanager
    async def running(self, n: int) -> AsyncIterator[Watcher]:
        """Every stage running until each has handled n records, and a watcher on the last
        topic; yields once every group has its first assignment, so that no clock includes
        it."""
        await ensure_topics(INFRA.kafka, self.topics)
        watcher = Watcher(self.topics[-1], f"bench-free-{self.tag}-")
        await watcher.start()
        stages = [asyncio.create_task(self.stage(i, n)) for i in range(len(self.stages))]
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self.ready)), timeout=60)
            yield watcher
        finally:
            for stage in stages:
                stage.cancel()
            await asyncio.gather(*stages, return_exceptions=True)
            await watcher.stop()
            await self.close()


def plain_databases(tag: str) -> list[str]:
    return [f"bench_plain_offers_{tag}", f"bench_plain_notifications_{tag}"]


async def measure_plain(label: str, tag: str, n: int) -> Rate:
    plain = Plain(tag, STEPS[label])
    commands = encoded_commands(tag, n)
    async with plain.running(n) as watcher:
        say(f"{label}: publishing {n} commands to {plain.topics[0]}")
        clock = CpuClock()
        before = clock.read()
        started = await publish_all(plain.topics[0], commands)
        published = time.perf_counter() - started
        last = await watcher.wait_for(
            n, kind="offer_received", within=300 + n, label=label, since=started
        )
        cpu = spent_between(before, clock.read())
    arrivals = sorted(t for (_, kind), t in watcher.arrived.items() if kind == "offer_received")
    rate = Rate(label, n, last - started, published, started, arrivals, cpu)
    say(f"{label}: {rate.per_second:.1f} offers/s ({n} in {rate.seconds:.1f}s)")
    return rate


# Goals: ours at least twice the per-record pipeline and a quarter of the batched one.
GOAL_PER_RECORD = 2.0
GOAL_BATCHED = 0.25


@dataclass(frozen=True)
class Repeat:
    """One repeat: both plain pipelines and ours, one after the other in `order`."""

    repeat: int
    order: tuple[str, ...]
    per_record: Rate
    batched: Rate
    ours: Rate

    @property
    def of_per_record(self) -> float:
        return self.ours.per_second / self.per_record.per_second

    @property
    def of_batched(self) -> float:
        return self.ours.per_second / self.batched.per_second


async def run(n: int, repeat: int, keep: bool, tag: str | None = None) -> list[Repeat]:
    tag = tag or run_id()
    say(f"throughput: run {tag}, {n} commands per measurement, {repeat} repeat(s)")
    repeats: list[Repeat] = []
    databases: list[str] = []
    paths = ("plain per-record", "plain batched", "ours")
    try:
        for r in range(1, repeat + 1):
            # The order turns with each repeat: the machine's other load shifts between them.
            order = paths[(r - 1) % 3 :] + paths[: (r - 1) % 3]
            rates: dict[str, Rate] = {}
            for path in order:
                path_tag = f"{tag}{'abo'[paths.index(path)]}{r}"
                if path == "ours":
                    databases += our_databases(path_tag)
                    rates[path] = await measure_ours(path_tag, n)
                else:
                    databases += plain_databases(path_tag)
                    rates[path] = await measure_plain(path, path_tag, n)
            repeats.append(Repeat(r, order, *(rates[path] for path in paths)))
    finally:
        if not keep:
            await drop_databases(databases)
    report(repeats)
    return repeats


def report(repeats: list[Repeat]) -> None:
    rows = [
        (
            r.repeat,
            ", ".join(path.removeprefix("plain ") for path in r.order),
            f"{r.per_record.per_second:.1f}",
            f"{r.batched.per_second:.1f}",
            f"{r.ours.per_second:.1f}",
            f"{r.of_per_record:.2f}x {'met' if r.of_per_record >= GOAL_PER_RECORD else 'missed'}",
            f"{r.of_batched:.2f}x {'met' if r.of_batched >= GOAL_BATCHED else 'missed'}",
        )
        for r in repeats
    ]
    offers = ", ".join(sorted({str(rate.n) for r in repeats for rate in (r.ours,)}))
    print(
        table(
            f"Throughput, ExtendOffer → OfferExtended → notification stored, {offers} offers "
            f"per path ({stamp()})",
            (
                "repeat",
                "order",
                "(a) per-record offers/s",
                "(b) batched offers/s",
                "ours offers/s",
                f"ours/(a), goal ≥ {GOAL_PER_RECORD:g}x",
                f"ours/(b), goal ≥ {GOAL_BATCHED:g}x",
            ),
            rows,
        )
    )
    print(
        "Both plain pipelines: 2 hops, each 1 insert + 1 publish per record, no reads, no\n"
        "  secondary indexes, one offset commit per fetched batch. (a) awaits each record's\n"
        "  insert_one, then its send; (b) does one insert_many per batch, then all sends\n"
        "  awaited together. Ours: the services as processes."
    )
    print(cpu_report(repeats))
    print(commands_report(repeats))


def commands_report(repeats: list[Repeat]) -> str:
    """The database commands ours sent per offer, by service, command and collection (the
    services' /metrics): on FerretDB a command costs about what five documents of a bulk
    insert do, so these counts say where the database's time goes."""
    measured = [r for r in repeats if r.ours.commands]
    keys = sorted({key for r in measured for key in r.ours.commands})
    rows = [
        (
            service,
            command,
            collection,
            *(
                f"{r.ours.commands[(service, command, collection)] / r.ours.n:.3f}"
                for r in measured
            ),
        )
        for service, command, collection in keys
    ]
    if not rows:
        return "(database commands: not counted, no /metrics answered)"
    return table(
        "Database commands per offer, ours, from the first publish to the last notification",
        ("service", "command", "collection", *(f"repeat {r.repeat}" for r in measured)),
        rows,
    )


def cpu_report(repeats: list[Repeat]) -> str:
    """CPU milliseconds per offer by part, each path of each repeat (bench.cpu)."""
    services = sorted({k for r in repeats for k in r.ours.cpu} - {BENCH, *SERVERS})
    parts = (*services, BENCH, *SERVERS)
    rows = []
    for r in repeats:
        for path, rate in (("(a)", r.per_record), ("(b)", r.batched), ("ours", r.ours)):
            if not rate.cpu:
                continue
            per_offer = {part: 1000 * rate.cpu.get(part, 0.0) / rate.n for part in parts}
            rows.append(
                (
                    r.repeat,
                    path,
                    *(f"{per_offer[part]:.2f}" if part in rate.cpu else "-" for part in parts),
                    f"{sum(per_offer.values()):.2f}",
                )
            )
    if not rows:
        return "(CPU per offer: not measured, no /proc here)"
    return table(
        "CPU per offer, ms, from the first publish to the last notification (bench/cpu.py)",
        ("repeat", "path", *parts, "total"),
        rows,
    ) + (
        f"`{BENCH}`: this process (the plain pipelines' stages, the publisher, the watcher). "
        "The servers are shared by all paths; every process of theirs on the machine counts."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="commands per measurement")
    parser.add_argument("--repeat", type=int, default=2, help="repeats of the three paths")
    add_infra_options(parser)
    args = parser.parse_args()
    run_with_infra(args, run(args.n, args.repeat, args.keep))


if __name__ == "__main__":
    main()
