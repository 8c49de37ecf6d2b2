"""Latency at a steady rate: command published → NotificationCreated seen on
notifications.events, for ExtendOffer (→ the freelancer's `offer_received`) and for
PostMessage (→ the other party's `new_message`; needs messaging_service as well).

The three services run as real processes. Commands go out at a fixed rate (`python -m
bench`: half the lowest rate of ours the throughput benchmark measured in the same run);
each latency is the time from handing the command to the producer until the watcher,
reading notifications.events with a 5 ms fetch wait, sees the notification. The goals,
printed beside the figures: p50 ≤ 20 ms, p99 ≤ 100 ms.

Beside ours, at each rate, the plain limit: bench.throughput's plain batched pipeline (two
hops, each doing the least its hop needs a fetched batch at a time; run in this process),
as the throughput goal defines it (an offset commit after each batch), with its offsets
committed every second as ours are, that with a third hop that re-keys the events by
recipient (what a per-recipient order costs; ours has it), and that with a stage beside the
path storing each offer's thread (messaging_service's share, which ours runs on the same
cores during the ExtendOffer runs), each sent the same ExtendOffer
commands at the same rate and watched the same way, so that a goal missed can be told
apart from a machine that cannot meet it. (The per-record pipeline saturates below half
our maximum.)

    python -m bench.latency --rate 5 [--rate 40 ...] [--seconds 40] [--no-plain]

The services run with their default settings (an earlier before/after pair of Kafka
settings measured no difference and was dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from contracts import topics
from services.runtime.kafka_access import client_options

from .common import (
    INFRA,
    Services,
    add_infra_options,
    drop_databases,
    extend_offer,
    hourly_terms,
    percentile,
    run_id,
    run_with_infra,
    say,
    stamp,
    table,
)
from .cpu import BENCH, SERVERS, CpuClock, spent_between
from .hops import hop_rows
from .throughput import Plain, batched, plain_databases
from .watch import Watcher

NAMES = ("offer_service", "messaging_service", "notification_service")
CPU_PARTS = (*NAMES, BENCH, *SERVERS)
# Goals at half the maximum rate, command published → NotificationCreated seen.
GOAL_P50_MS = 20
GOAL_P99_MS = 100


def against(value: float, goal: float) -> str:
    return f"{value:.0f} ({'met' if value <= goal else 'missed'})"


@dataclass(frozen=True)
class Latencies:
    path: str
    rate: float
    sent: int
    seconds: list[float]
    # CPU seconds each part spent from the first command sent to the last notification seen
    # (bench/cpu.py): at a steady rate, what one command costs, beside a burst's figure.
    cpu: dict[str, float]
    # The database commands each service sent meanwhile: (service, command, collection).
    commands: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def command_rows(self) -> list[tuple[str, ...]]:
        """Commands per command sent, the busiest first (those of at least 0.01)."""
        per = {what: count / max(1, self.sent) for what, count in self.commands.items()}
        return [
            (self.path, f"{self.rate:.1f}", *what, f"{share:.2f}")
            for what, share in sorted(per.items(), key=lambda item: -item[1])
            if share >= 0.01
        ]

    def cpu_row(self) -> tuple[str, ...]:
        per = {part: 1000 * seconds / max(1, self.sent) for part, seconds in self.cpu.items()}
        return (
            self.path,
            f"{self.rate:.1f}",
            *(f"{per.get(part, 0.0):.2f}" for part in CPU_PARTS),
            f"{sum(per.values()):.2f}",
        )

    def row(self) -> tuple[str, ...]:
        ms = [1000 * s for s in self.seconds]
        return (
            self.path,
            f"{self.rate:.1f}",
            f"{len(ms)}/{self.sent}",
            against(percentile(ms, 50), GOAL_P50_MS),
            f"{percentile(ms, 95):.0f}",
            against(percentile(ms, 99), GOAL_P99_MS),
            f"{max(ms) if ms else float('nan'):.0f}",
        )


async def steady(
    producer: AIOKafkaProducer,
    topic: str,
    messages: list[tuple[str, bytes]],
    rate: float,
    label: str,
) -> dict[str, float]:
    """Sends at `rate` per second; returns each key's send time."""
    sent: dict[str, float] = {}
    started = time.perf_counter()
    next_line = started + 5
    for i, (key, value) in enumerate(messages):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[key] = time.perf_counter()
        await producer.send(topic, value, key=key.encode())
        if time.perf_counter() >= next_line:
            say(f"{label}: sent {i + 1}/{len(messages)}")
            next_line += 5
    return sent


async def sent_and_seen(
    producer: AIOKafkaProducer,
    topic: str,
    messages: list[tuple[str, bytes]],
    rate: float,
    label: str,
    watcher: Watcher,
    kind: str,
) -> dict[str, float]:
    """Sends at `rate`, then waits (up to 120 s) until the watcher has seen a `kind` for
    each; returns each key's send time."""
    sent = await steady(producer, topic, messages, rate, label)
    since = time.perf_counter()
    try:
        await watcher.wait_for(len(messages), kind=kind, within=120, label=label, since=since)
    except TimeoutError as error:
        say(f"{label}: {error}")
    return sent


def latencies(sent: dict[str, float], watcher: Watcher, kind: str) -> list[float]:
    """Latency per command, matched by the freelancer id the command's offer belongs to."""
    out = []
    for offer_id, at in sent.items():
        freelancer = offer_id.replace("bench-offer-", "bench-free-", 1)
        arrived = watcher.arrived.get((freelancer, kind))
        if arrived is not None:
            out.append(arrived - at)
    return out


async def measure(
    tag: str, rate: float, seconds: float
) -> tuple[list[Latencies], list[tuple[str, ...]]]:
    count = max(10, int(rate * seconds))
    terms = hourly_terms()
    extends = [extend_offer(tag, i, terms) for i in range(count)]
    watcher = Watcher("notifications.events", f"bench-free-{tag}-")
    producer = AIOKafkaProducer(**client_options(INFRA.kafka), linger_ms=0)
    results = []
    hops: list[tuple[str, ...]] = []
    async with Services(tag, NAMES) as services:
        await watcher.start()
        await producer.start()
        clock = CpuClock({p.name: p.process.pid for p in services.processes if p.process})
        try:
            label = "latency ExtendOffer"
            say(f"{label}: {count} commands at {rate:.1f}/s")
            started_ms = int(time.time() * 1000) - 1000
            before, commands = clock.read(), await services.database_commands()
            sent = await sent_and_seen(
                producer,
                "offers.commands",
                [(c["offer_id"], json.dumps(c).encode()) for c in extends],
                rate,
                label,
                watcher,
                "offer_received",
            )
            results.append(
                Latencies(
                    "ExtendOffer → offer_received",
                    rate,
                    count,
                    latencies(sent, watcher, "offer_received"),
                    spent_between(before, clock.read()),
                    await services.database_commands() - commands,
                )
            )
            internal = topics.internal(services.group("notification_service"))
            hops = await hop_rows([c["offer_id"] for c in extends], internal, started_ms)
            # The client writes in each offer's thread; the freelancer is notified.
            label = "latency PostMessage"
            posts = [
                {
                    "type": "PostMessage",
                    "command_id": str(uuid.uuid4()),
                    "actor_id": c["client_id"],
                    "offer_id": c["offer_id"],
                    "message_id": str(uuid.uuid4()),
                    "text": "Could we start a week later?",
                }
                for c in extends
            ]
            say(f"{label}: {count} commands at {rate:.1f}/s")
            before, commands = clock.read(), await services.database_commands()
            sent = await sent_and_seen(
                producer,
                "negotiations.commands",
                [(p["offer_id"], json.dumps(p).encode()) for p in posts],
                rate,
                label,
                watcher,
                "new_message",
            )
            results.append(
                Latencies(
                    "PostMessage → new_message",
                    rate,
                    count,
                    latencies(sent, watcher, "new_message"),
                    spent_between(before, clock.read()),
                    await services.database_commands() - commands,
                )
            )
        finally:
            await producer.stop()
            await watcher.stop()
    return results, hops


# The plain limit at a steady rate: bench.throughput's plain batched pipeline (b) as the
# issue defines it, an offset commit after each batch; the same with its offsets committed
# every second, as ours are, which is the least a batched hop must do; that with the hop a
# per-recipient order adds (the events re-keyed by freelancer, as ours re-key them through
# notification_service's Notify); and that with each offer's thread stored beside the path
# (messaging_service's share). (step, seconds between commits (0: after each batch),
# re-keyed, a thread stored beside): see bench.throughput.Plain.
PLAIN_LIMITS = {
    "plain batched": (batched, 0.0, False, False),
    "plain batched, offsets every 1 s": (batched, 1.0, False, False),
    "plain batched, offsets every 1 s, re-keyed (3 hops)": (batched, 1.0, True, False),
    "plain batched, offsets every 1 s, re-keyed (3 hops), a thread stored beside": (
        batched,
        1.0,
        True,
        True,
    ),
}


async def measure_plain(tag: str, label: str, rate: float, seconds: float) -> Latencies:
    """The plain limit at the same rate: a plain pipeline of bench.throughput, whose hops
    do the least the job needs (in this process), sent the same commands the same way and
    watched the same way."""
    count = max(10, int(rate * seconds))
    terms = hourly_terms()
    extends = [extend_offer(tag, i, terms) for i in range(count)]
    step, commit_every, repartition, beside = PLAIN_LIMITS[label]
    plain = Plain(tag, step, commit_every, repartition, beside)
    producer = AIOKafkaProducer(**client_options(INFRA.kafka), linger_ms=0)
    await producer.start()
    try:
        async with plain.running(count) as watcher:
            say(f"latency {label}: {count} commands at {rate:.1f}/s")
            clock = CpuClock()
            before = clock.read()
            sent = await sent_and_seen(
                producer,
                plain.topics[0],
                [(c["offer_id"], json.dumps(c).encode()) for c in extends],
                rate,
                f"latency {label}",
                watcher,
                "offer_received",
            )
            return Latencies(
                f"ExtendOffer → offer_received, {label}",
                rate,
                count,
                latencies(sent, watcher, "offer_received"),
                spent_between(before, clock.read()),
            )
    finally:
        await producer.stop()


async def run(
    rates: float | list[float],
    seconds: float,
    keep: bool,
    tag: str | None = None,
    plain: tuple[str, ...] = tuple(PLAIN_LIMITS),
) -> list[Latencies]:
    """Each rate in turn, on services of its own, and each plain pipeline of `plain` at
    the same rate; one table for all of them."""
    tag = tag or run_id()
    results: list[Latencies] = []
    hops: list[tuple[str, ...]] = []
    for index, rate in enumerate(rates if isinstance(rates, list) else [rates]):
        each = tag if index == 0 else f"{tag}{index}"
        say(f"latency: run {each}, {rate:.1f} commands/s for {seconds:.0f}s per path")
        try:
            measured, measured_hops = await measure(each, rate, seconds)
        finally:
            if not keep:
                await drop_databases([f"bench_{name}_{each}" for name in NAMES])
        results += measured
        for number, label in enumerate(plain):
            plain_tag = f"{each}p{number}"
            try:
                results.append(await measure_plain(plain_tag, label, rate, seconds))
            finally:
                if not keep:
                    await drop_databases(plain_databases(plain_tag))
        hops += [(f"{rate:.1f}", *row) for row in measured_hops]
    print(
        table(
            f"Latency at a steady rate, command published → NotificationCreated ({stamp()})",
            (
                "path",
                "rate/s",
                "seen",
                f"p50 ms, goal ≤ {GOAL_P50_MS}",
                "p95 ms",
                f"p99 ms, goal ≤ {GOAL_P99_MS}",
                "max ms",
            ),
            [result.row() for result in results],
        )
    )
    print(
        table(
            "Where the ExtendOffer path's time goes, between the records' Kafka timestamps "
            "(bench/hops.py)",
            ("rate/s", "hop", "offers", "p50 ms", "p99 ms"),
            hops,
        )
    )
    print(
        table(
            "CPU per command at that steady rate, ms, from the first sent to the last "
            "notification seen (bench/cpu.py; compare the throughput table's burst figures)",
            ("path", "rate/s", *CPU_PARTS, "total"),
            [result.cpu_row() for result in results],
        )
    )
    print(
        table(
            "Database commands per command at that steady rate (offers_database_commands_total; "
            "a burst sends about 1 per offer in all)",
            ("path", "rate/s", "service", "command", "collection", "per command"),
            [row for result in results for row in result.command_rows()],
        )
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rate",
        type=float,
        action="append",
        required=True,
        help="commands per second (repeat it for several rates, each on services of its own)",
    )
    parser.add_argument("--seconds", type=float, default=40, help="seconds of sending per path")
    parser.add_argument(
        "--no-plain", action="store_true", help="without the plain pipelines at the same rates"
    )
    add_infra_options(parser)
    args = parser.parse_args()
    plain = () if args.no_plain else tuple(PLAIN_LIMITS)
    run_with_infra(args, run(args.rate, args.seconds, args.keep, plain=plain))


if __name__ == "__main__":
    main()
