"""Resume after `kill -9`: how soon each service handles records again after a SIGKILL and
an immediate restart, while a light stream of commands flows. Goal: within 2 s of the kill.

The three services run as real processes, with static group membership on (each consumer's
`group.instance.id` is `<service>@<host>:<HTTP port>-<n>`, services/runtime/config.py, and a
restarted process keeps its HTTP port, so it rejoins as the same member and gets its
partitions back without a rebalance or waiting out the dead member's session). A warm-up
extends a pool of offers and posts one message on each. Then, `--rate` times a second, the
bench sends one ExtendOffer for a new offer and one PostMessage on a pool offer, and for each
service in turn: SIGKILL its process, start it again at once on the same port, and wait for
the first record it handles for a command sent after the kill:

- offer_service: the OfferExtended of such an ExtendOffer (offers.events);
- messaging_service: the MessagePosted of such a PostMessage (negotiations.events);
- notification_service: the freelancer's NotificationCreated (`offer_received`) for such an
  ExtendOffer (notifications.events).

Printed per service: seconds from the restart (the new process spawned) to handling, and from
the kill to handling, the time the watcher sees the record (5 ms fetch wait).

    python -m bench.resume [--rate 5] [--steady 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts import topics
from services.runtime.kafka import ensure_topics
from services.runtime.kafka_access import client_options

from .common import (
    INFRA,
    Services,
    add_infra_options,
    drop_databases,
    extend_offer,
    hourly_terms,
    run_id,
    run_with_infra,
    say,
    stamp,
    table,
)

NAMES = ("offer_service", "messaging_service", "notification_service")
GOAL_SECONDS = 2.0
POOL = 20  # offers extended in the warm-up, for the PostMessage stream


@dataclass
class Seen:
    """When each of the run's records of interest arrived (perf_counter), read from the ends
    of the three event topics: OfferExtended by offer, MessagePosted by message,
    NotificationCreated (`offer_received`) by offer."""

    prefix: str
    extended: dict[str, float] = field(default_factory=dict)
    posted: dict[str, float] = field(default_factory=dict)
    notified: dict[str, float] = field(default_factory=dict)

    def note(self, value: dict[str, Any], now: float) -> None:
        offer = str(value.get("offer_id", ""))
        if not offer.startswith(self.prefix):
            return
        if value.get("type") == "OfferExtended":
            self.extended.setdefault(offer, now)
        elif value.get("type") == "MessagePosted":
            self.posted.setdefault(str(value.get("message_id")), now)
        elif value.get("type") == "NotificationCreated" and value.get("kind") == "offer_received":
            self.notified.setdefault(offer, now)


async def watch(seen: Seen, ready: asyncio.Event) -> None:
    names = [topics.OFFERS_EVENTS, topics.NEGOTIATIONS_EVENTS, topics.NOTIFICATIONS_EVENTS]
    counts = await ensure_topics(INFRA.kafka, names)
    partitions = [TopicPartition(name, n) for name in names for n in range(counts[name])]
    consumer = AIOKafkaConsumer(**client_options(INFRA.kafka), fetch_max_wait_ms=5)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    with suppress(ValueError, AttributeError):
                        seen.note(json.loads(record.value or b"{}"), now)
    finally:
        await consumer.stop()


@dataclass
class Stream:
    """ExtendOffer for new offers and PostMessage on the pool's offers, `rate` of each a
    second; each command's send time by offer (ExtendOffer) or message (PostMessage)."""

    tag: str
    producer: AIOKafkaProducer
    rate: float
    pool: list[dict[str, Any]] = field(default_factory=list)
    extends: dict[str, float] = field(default_factory=dict)
    posts: dict[str, float] = field(default_factory=dict)
    terms: dict[str, Any] = field(default_factory=hourly_terms)

    async def extend(self) -> dict[str, Any]:
        command = extend_offer(self.tag, len(self.extends), self.terms)
        self.extends[command["offer_id"]] = time.perf_counter()
        await self.producer.send_and_wait(
            topics.OFFERS_COMMANDS, json.dumps(command).encode(), key=command["offer_id"].encode()
        )
        return command

    async def post(self) -> None:
        offer = self.pool[len(self.posts) % len(self.pool)]
        message_id = str(uuid.uuid4())
        command = {
            "type": "PostMessage",
            "command_id": str(uuid.uuid4()),
            "actor_id": offer["client_id"],
            "offer_id": offer["offer_id"],
            "message_id": message_id,
            "text": "Could we start a week later?",
        }
        self.posts[message_id] = time.perf_counter()
        await self.producer.send_and_wait(
            topics.NEGOTIATIONS_COMMANDS,
            json.dumps(command).encode(),
            key=offer["offer_id"].encode(),
        )

    async def flow(self) -> None:
        while True:
            await asyncio.gather(self.extend(), self.post(), asyncio.sleep(1 / self.rate))


async def until(condition: Callable[[], float | None], within: float) -> float | None:
    """Polls every 10 ms until `condition` gives a time; None after `within` seconds."""
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        found = condition()
        if found is not None:
            return found
        await asyncio.sleep(0.01)
    return None


def first_after(sent: dict[str, float], arrived: dict[str, float], since: float) -> float | None:
    """The earliest arrival of a record for a command sent after `since`."""
    times = [arrived[key] for key, at in list(sent.items()) if at > since and key in arrived]
    return min(times) if times else None


@dataclass(frozen=True)
class Resumed:
    service: str
    restart_to_handling: float | None
    kill_to_handling: float | None

    def row(self) -> tuple[str, ...]:
        def seconds(value: float | None) -> str:
            return "not within 60 s" if value is None else f"{value:.2f}"

        kill = self.kill_to_handling
        verdict = "met" if kill is not None and kill <= GOAL_SECONDS else "missed"
        return (
            self.service,
            seconds(self.restart_to_handling),
            f"{seconds(kill)} ({verdict})",
        )


async def measure(tag: str, rate: float, steady: float) -> list[Resumed]:
    seen = Seen(f"bench-offer-{tag}-")
    ready = asyncio.Event()
    watcher = asyncio.create_task(watch(seen, ready))
    producer = AIOKafkaProducer(**client_options(INFRA.kafka), linger_ms=0)
    results: list[Resumed] = []
    # Static membership explicitly on (it is the default), whatever the caller's environment.
    async with Services(tag, NAMES, extra_env={"KAFKA_STATIC_MEMBERSHIP": "true"}) as running:
        await producer.start()
        flow: asyncio.Task[None] | None = None
        try:
            await asyncio.wait_for(ready.wait(), timeout=30)
            stream = Stream(tag, producer, rate)
            say(f"resume: warm-up, {POOL} offers extended and a message posted on each")
            stream.pool = [await stream.extend() for _ in range(POOL)]
            for _ in range(POOL):
                await stream.post()
            pool_ids = [offer["offer_id"] for offer in stream.pool]
            warm = await until(
                lambda: (
                    0.0
                    if all(o in seen.notified for o in pool_ids) and len(seen.posted) >= POOL
                    else None
                ),
                within=120,
            )
            if warm is None:
                raise RuntimeError("resume: the warm-up's offers and messages were not handled")
            flow = asyncio.create_task(stream.flow())
            arrivals = {
                "offer_service": (stream.extends, seen.extended),
                "messaging_service": (stream.posts, seen.posted),
                "notification_service": (stream.extends, seen.notified),
            }
            for process in running.processes:
                name = process.name
                say(
                    f"resume: {name} runs as group.instance.id {name}@{socket.gethostname()}:"
                    f"{process.port}-<n>, kept across the restart (same HTTP port)"
                )
                await asyncio.sleep(steady)
                sent, arrived = arrivals[name]
                killed = time.perf_counter()
                process.kill()
                restarted = time.perf_counter()
                process.start()
                say(f"resume: kill -9 {name} ({1000 * (restarted - killed):.0f} ms), started again")
                handled = await until(partial(first_after, sent, arrived, killed), within=60)
                result = Resumed(
                    name,
                    None if handled is None else handled - restarted,
                    None if handled is None else handled - killed,
                )
                say(f"resume: {' | '.join(result.row())}")
                results.append(result)
                await asyncio.to_thread(process.wait_healthy, 90)
        finally:
            if flow:
                flow.cancel()
                with suppress(asyncio.CancelledError):
                    await flow
            await producer.stop()
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
    return results


async def run(rate: float, steady: float, keep: bool, tag: str | None = None) -> list[Resumed]:
    tag = tag or run_id()
    say(f"resume: run {tag}, {rate:g} ExtendOffer + {rate:g} PostMessage a second")
    try:
        results = await measure(tag, rate, steady)
    finally:
        if not keep:
            await drop_databases([f"bench_{name}_{tag}" for name in NAMES])
    print(
        table(
            f"Resume after kill -9, while {rate:g} ExtendOffer + {rate:g} PostMessage a second "
            f"flow ({stamp()})",
            (
                "service",
                "restart → handling s",
                f"kill → handling s, goal ≤ {GOAL_SECONDS:g}",
            ),
            [result.row() for result in results],
        )
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=5, help="commands a second of each type")
    parser.add_argument(
        "--steady", type=float, default=3, help="seconds of steady flow before each kill"
    )
    add_infra_options(parser)
    args = parser.parse_args()
    run_with_infra(args, run(args.rate, args.steady, args.keep))


if __name__ == "__main__":
    main()
