"""Where a latency goes, hop by hop: the times between the records an ExtendOffer causes,
read back from the topics by their Kafka timestamps (each set when the record was handed
to its producer: the command by the bench, the others by a service once it had stored what
it handled).

    command → OfferExtended      offer_service: fetch, decide, store
    OfferExtended → Notify       notification_service, the offer's partition
    Notify → NotificationCreated notification_service, the freelancer's partition

What is left of the end-to-end figure is the last record's way to the watcher, and the
acknowledgements, outbox emptying and offset commits that follow each hop's send (they
hold the next batch back, not this one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import topics
from services.runtime.kafka import ensure_topics
from services.runtime.kafka_access import client_options

from .common import INFRA, percentile

# (label, topic, record type) of each record on the path, in order; None: the service's
# internal topic (named after its consumer group).
PATH: tuple[tuple[str, str | None, str], ...] = (
    ("command", topics.OFFERS_COMMANDS, "ExtendOffer"),
    ("OfferExtended", topics.OFFERS_EVENTS, "OfferExtended"),
    ("Notify", None, "Notify"),
    ("NotificationCreated", topics.NOTIFICATIONS_EVENTS, "NotificationCreated"),
)


async def written_at(topic: str, type_: str, offer_ids: set[str], since_ms: int) -> dict[str, int]:
    """offer id → the timestamp of its first record of `type_` on `topic` since `since_ms`."""
    counts = await ensure_topics(INFRA.kafka, [topic])
    partitions = [TopicPartition(topic, n) for n in range(counts[topic])]
    consumer = AIOKafkaConsumer(**client_options(INFRA.kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        starts = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        ends = await consumer.end_offsets(partitions)
        for partition in partitions:
            start = starts.get(partition)
            consumer.seek(partition, ends[partition] if start is None else start.offset)
        found: dict[str, int] = {}
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    try:
                        value = json.loads(record.value or b"{}")
                    except ValueError:
                        continue
                    if value.get("type") != type_:
                        continue
                    offer_id = value.get("offer_id") or value.get("notification", {}).get(
                        "offer_id"
                    )
                    if offer_id in offer_ids:
                        found.setdefault(offer_id, record.timestamp)
        return found
    finally:
        await consumer.stop()


async def hop_rows(
    offer_ids: Sequence[str], internal_topic: str, since_ms: int
) -> list[tuple[str, ...]]:
    """One row per hop: its name, how many offers made it, p50 and p99 in ms."""
    wanted = set(offer_ids)
    times = [
        await written_at(topic or internal_topic, type_, wanted, since_ms)
        for _, topic, type_ in PATH
    ]
    rows: list[tuple[str, ...]] = []
    names = [label for label, _, _ in PATH]
    hops = zip(names, names[1:], times, times[1:], strict=False)  # consecutive pairs
    for before, after, start, end in hops:
        gaps = [float(end[o] - start[o]) for o in wanted if o in start and o in end]
        if not gaps:
            rows.append((f"{before} → {after}", "0", "-", "-"))
            continue
        rows.append(
            (
                f"{before} → {after}",
                str(len(gaps)),
                f"{percentile(gaps, 50):.0f}",
                f"{percentile(gaps, 99):.0f}",
            )
        )
    return rows
