"""Pushed stream latency: from the service storing a chat message to a client receiving it,
over `GET /threads/{offer_id}/stream`, beside the read-API poll it replaces (a client
polling `/threads/{offer_id}/messages` every 1 s and every 250 ms), in the same run.

messaging_service runs as a real process; the threads are opened by OfferExtended events
published straight to offers.events (no offer_service needed). PostMessage commands go out
at a steady rate, spread over the threads, in three phases one after the other: each
thread followed by one stream client, then polled every 1 s, then every 250 ms. A latency
is the client's clock when it first has the message minus the message's `sent_at`: the
moment the service stored it (the same machine's clock).

    python -m bench.streams [--threads 10] [--rate 10] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from contracts import format_utc
from services.runtime.kafka_access import client_options
from tests.integration.sse import stream

from .common import (
    INFRA,
    Services,
    add_infra_options,
    drop_databases,
    hourly_terms,
    percentile,
    run_id,
    run_with_infra,
    say,
    stamp,
    table,
)

NAME = "messaging_service"
POLL_INTERVALS = (1.0, 0.25)


def now() -> datetime:
    return datetime.now(UTC)


def offer_extended(tag: str, n: int) -> dict[str, Any]:
    at = now()
    return {
        "type": "OfferExtended",
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": format_utc(at),
        "causation_id": str(uuid.uuid4()),
        "offer_id": f"bench-offer-{tag}-{n}",
        "version": 1,
        "job_id": f"bench-job-{tag}-{n}",
        "proposal_id": f"bench-prop-{tag}-{n}",
        "client_id": f"bench-client-{tag}-{n}",
        "freelancer_id": f"bench-free-{tag}-{n}",
        "terms": hourly_terms(),
        "message": None,
        "expires_at": format_utc(at + timedelta(days=30)),
    }


class Arrivals:
    """How long after its sent_at each of one phase's messages was first in a client's
    hands, by message id (messages of other phases, told by their text, are not counted)."""

    def __init__(self, text_prefix: str) -> None:
        self.text_prefix = text_prefix
        self.seen: dict[str, float] = {}

    def note(self, message_id: str, sent_at: str, text: str) -> None:
        if text.startswith(self.text_prefix) and message_id not in self.seen:
            self.seen[message_id] = (now() - datetime.fromisoformat(sent_at)).total_seconds()

    def row(self, path: str, sent: int) -> tuple[str, ...]:
        ms = [1000 * s for s in self.seen.values()]
        return (
            path,
            f"{len(ms)}/{sent}",
            f"{percentile(ms, 50):.0f}",
            f"{percentile(ms, 95):.0f}",
            f"{percentile(ms, 99):.0f}",
            f"{max(ms) if ms else float('nan'):.0f}",
        )


async def follow(client: httpx.AsyncClient, offer: dict[str, Any], into: Arrivals) -> None:
    offer_id, me = offer["offer_id"], {"X-Actor-Id": offer["client_id"]}  # a party reads
    async with stream(client, f"/threads/{offer_id}/stream", me) as thread:
        assert thread.status_code == 200, f"stream of {offer_id}: HTTP {thread.status_code}"
        while True:
            item = await thread.next(within=3600)
            if item.event == "MessagePosted":
                event = item.json()
                into.note(event["message_id"], event["sent_at"], event["text"])


async def poll(
    client: httpx.AsyncClient, offer: dict[str, Any], every: float, into: Arrivals
) -> None:
    offer_id, me = offer["offer_id"], {"X-Actor-Id": offer["client_id"]}  # a party reads
    while True:
        path = f"/threads/{offer_id}/messages"
        response = await client.get(path, params={"limit": 200}, headers=me)
        if response.status_code == 200:
            for message in response.json()["items"]:
                into.note(message["message_id"], message["sent_at"], message["text"])
        await asyncio.sleep(every)


async def send_messages(
    producer: AIOKafkaProducer, offers: list[dict[str, Any]], count: int, rate: float, label: str
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(count):
        delay = started + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        offer = offers[i % len(offers)]
        post = {
            "type": "PostMessage",
            "command_id": str(uuid.uuid4()),
            "actor_id": offer["client_id"],
            "offer_id": offer["offer_id"],
            "message_id": str(uuid.uuid4()),
            "text": f"{label}: message {i}",
        }
        await producer.send(
            "negotiations.commands", json.dumps(post).encode(), key=offer["offer_id"].encode()
        )
        if (i + 1) % max(1, int(rate * 5)) == 0:
            say(f"{label}: sent {i + 1}/{count}")


async def phase(
    client: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    offers: list[dict[str, Any]],
    count: int,
    rate: float,
    poll_every: float | None,
) -> Arrivals:
    """One client per thread, pushed (None) or polling; `count` messages; their arrivals."""
    label = "pushed" if poll_every is None else f"poll every {poll_every * 1000:.0f} ms"
    arrivals = Arrivals(f"{label}: ")
    clients = [
        asyncio.create_task(
            follow(client, o, arrivals)
            if poll_every is None
            else poll(client, o, poll_every, arrivals)
        )
        for o in offers
    ]
    try:
        await asyncio.sleep(2)  # connected (and the earlier phases' messages read)
        say(f"{label}: {len(offers)} clients; {count} messages at {rate:.1f}/s")
        await send_messages(producer, offers, count, rate, label)
        for _ in range(60):  # the stragglers, for up to 30 s
            if len(arrivals.seen) >= count:
                break
            await asyncio.sleep(0.5)
    finally:
        for task in clients:
            task.cancel()
        for task in clients:
            with suppress(asyncio.CancelledError, Exception):
                await task
    return arrivals


async def measure(tag: str, threads: int, rate: float, seconds: float) -> list[tuple[str, ...]]:
    count = max(10, int(rate * seconds))
    offers = [offer_extended(tag, n) for n in range(threads)]
    producer = AIOKafkaProducer(**client_options(INFRA.kafka), linger_ms=0)
    rows = []
    async with Services(tag, [NAME]) as services:
        await producer.start()
        limits = httpx.Limits(max_connections=threads + 10)
        url = services.processes[0].url
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
                for offer in offers:
                    await producer.send_and_wait(
                        "offers.events", json.dumps(offer).encode(), key=offer["offer_id"].encode()
                    )
                await asyncio.sleep(2)  # the threads exist before anyone polls them
                # One phase after the other, so that no client's load weighs on another's.
                for poll_every in (None, *POLL_INTERVALS):
                    arrivals = await phase(client, producer, offers, count, rate, poll_every)
                    name = (
                        "pushed: GET /threads/{id}/stream (SSE)"
                        if poll_every is None
                        else f"baseline: poll /messages every {poll_every * 1000:.0f} ms"
                    )
                    rows.append(arrivals.row(name, count))
        finally:
            await producer.stop()
    return rows


async def run(threads: int, rate: float, seconds: float, keep: bool) -> None:
    tag = run_id()
    say(f"streams: run {tag}")
    try:
        rows = await measure(tag, threads, rate, seconds)
    finally:
        if not keep:
            await drop_databases([f"bench_{NAME}_{tag}"])
    print(
        table(
            f"Chat message stored → in the client's hands ({stamp()})",
            ("client", "seen", "p50 ms", "p95 ms", "p99 ms", "max ms"),
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=10, help="threads followed at once")
    parser.add_argument("--rate", type=float, default=10, help="messages per second, in all")
    parser.add_argument("--seconds", type=float, default=30, help="seconds of sending")
    add_infra_options(parser)
    args = parser.parse_args()
    run_with_infra(args, run(args.threads, args.rate, args.seconds, args.keep))


if __name__ == "__main__":
    main()
