"""The gateway while Kafka is away: a command is answered 503 within the publish timeout,
saying why, and /health says so too; once the broker is back, the same command (same
command_id) is answered 202 and is on its topic, and the command sent before the outage is
there once. The one that got the 503 may be there twice (the producer delivers what it held
once the broker is back): the same command_id, which the services handle once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import topics
from services.gateway.app import in_process
from services.gateway.settings import GatewaySettings
from services.runtime.kafka import ensure_topics
from services.runtime.kafka_access import client_options

from .system import infra
from .verdict import Check, Verdict

TIMEOUT = 3.0  # GATEWAY_PUBLISH_TIMEOUT_SECONDS for the run


def say(message: str) -> None:
    print(f"[faults] {message}", flush=True)


@asynccontextmanager
async def gateway(bootstrap: str) -> AsyncIterator[httpx.AsyncClient]:
    # The retries of one actor, one a second, must not meet the per-actor rate limit.
    settings = GatewaySettings(
        kafka_bootstrap_servers=bootstrap,
        publish_timeout_seconds=TIMEOUT,
        commands_per_minute=600.0,
        command_burst=100,
    )
    async with in_process(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


def mark_read(recipient: str) -> dict[str, Any]:
    return {
        "type": "MarkNotificationsRead",
        "command_id": str(uuid.uuid4()),
        "recipient_id": recipient,
        "notification_ids": [f"n-{uuid.uuid4().hex[:8]}"],
    }


async def published(bootstrap: str, since: dict[TopicPartition, int]) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(**client_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(since))
        for partition, offset in since.items():
            consumer.seek(partition, offset)
        ends = await consumer.end_offsets(list(since))
        found: list[dict[str, Any]] = []

        async def behind() -> bool:
            return any([await consumer.position(p) < ends[p] for p in since])

        while await behind():
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                found += [json.loads(record.value or b"{}") for record in batch]
        return found
    finally:
        await consumer.stop()


async def gateway_outage(bootstrap: str) -> Verdict:
    topic = topics.NOTIFICATIONS_COMMANDS
    counts = await ensure_topics(bootstrap, [topic])
    partitions = [TopicPartition(topic, n) for n in range(counts[topic])]
    reader = AIOKafkaConsumer(**client_options(bootstrap))
    await reader.start()
    try:
        since = await reader.end_offsets(partitions)
    finally:
        await reader.stop()

    recipient = f"faults-{uuid.uuid4().hex[:8]}"
    headers = {"X-Actor-Id": recipient}
    before, during = mark_read(recipient), mark_read(recipient)
    refusal = Check("with Kafka stopped: 503 within the publish timeout, saying why")
    health = Check("with Kafka stopped: /health 503")
    recovery = Check("with Kafka back: the same command answered 202")
    async with gateway(bootstrap) as client:
        first = await client.post("/commands", json=before, headers=headers)
        assert first.status_code == 202, first.text
        say("stopping kafka...")
        await asyncio.to_thread(infra, "stop", "kafka")
        try:
            started = time.monotonic()
            answer = await client.post("/commands", json=during, headers=headers)
            took = time.monotonic() - started
            refusal.total = health.total = 1
            refusal.note = f"{answer.status_code} after {took:.1f}s: {answer.json()['message']}"
            if answer.status_code != 503 or took > TIMEOUT + 2:
                refusal.wrong.append(refusal.note)
            checked = await client.get("/health")
            health.note = f"{checked.status_code} {checked.json()}"
            if checked.status_code != 503:
                health.wrong.append(health.note)
        finally:
            say("starting kafka again...")
            await asyncio.to_thread(infra, "start", "kafka")
        back = time.monotonic()
        tries = 0
        while time.monotonic() - back < 120:
            tries += 1
            retried = await client.post("/commands", json=during, headers=headers)
            if retried.status_code == 202:
                break
            await asyncio.sleep(1)
        recovery.total = 1
        recovery.note = f"{retried.status_code} after {tries} tries, {time.monotonic() - back:.1f}s"
        if retried.status_code != 202:
            recovery.wrong.append(recovery.note)

    found = await published(bootstrap, since)
    once = Check("on notifications.commands: the command before the outage once, the retried one")
    # Twice is allowed for the retried one: the refused attempt may be delivered late.
    ids = [record.get("command_id") for record in found]
    once.total = len(found)
    once.note = (
        f"before: {ids.count(before['command_id'])}, retried: {ids.count(during['command_id'])}"
    )
    if ids.count(before["command_id"]) != 1:
        once.wrong.append(
            f"the command sent before the outage is there {ids.count(before['command_id'])} times"
        )
    if ids.count(during["command_id"]) < 1:
        once.missing.append("the retried command is not on the topic")
    return Verdict("gateway while Kafka is away", [refusal, health, recovery, once])
