"""`python -m bench.gateway`: what the gateway adds to sending a command. The same commands,
one at a time, sent (1) by a bare idempotent aiokafka producer with acks=all, the baseline,
and (2) as POST /commands to the gateway over HTTP (JSON read and checked with contracts/,
then the same kind of publish). Kafka from KAFKA_BOOTSTRAP_SERVERS; the gateway runs
in-process on a random port. Figures are printed; nothing here is a test."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from contracts import topics
from services.gateway.app import in_process
from services.gateway.settings import GatewaySettings
from services.runtime.kafka_access import client_options

from .common import percentile, say, table


def post_message(offer_id: str) -> dict[str, Any]:
    return {
        "type": "PostMessage",
        "command_id": str(uuid.uuid4()),
        "actor_id": "bench-client",
        "offer_id": offer_id,
        "message_id": str(uuid.uuid4()),
        "text": "Could we do 50/h?",
    }


async def timed(n: int, send: Callable[[dict[str, Any]], Awaitable[None]]) -> list[float]:
    took = []
    for i in range(n):
        command = post_message(f"bench-offer-{i % 50}")
        started = time.perf_counter()
        await send(command)
        took.append((time.perf_counter() - started) * 1000)
    return took


async def baseline(bootstrap: str, n: int) -> list[float]:
    producer = AIOKafkaProducer(
        **client_options(bootstrap), acks="all", enable_idempotence=True, linger_ms=0
    )
    await producer.start()
    try:

        async def send(command: dict[str, Any]) -> None:
            await producer.send_and_wait(
                topics.NEGOTIATIONS_COMMANDS,
                json.dumps(command).encode(),
                key=command["offer_id"].encode(),
                headers=[("type", b"PostMessage")],
            )

        return await timed(n, send)
    finally:
        await producer.stop()


async def through_the_gateway(bootstrap: str, n: int) -> list[float]:
    async with (
        # One actor sends every command: the per-actor rate limit is lifted, since what is
        # measured is the gateway's own cost, not its limit.
        in_process(
            GatewaySettings(
                kafka_bootstrap_servers=bootstrap, commands_per_minute=1e9, command_burst=n
            )
        ) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        headers = {"X-Actor-Id": "bench-client"}

        async def send(command: dict[str, Any]) -> None:
            response = await client.post("/commands", json=command, headers=headers)
            if response.status_code != 202:
                raise RuntimeError(f"gateway answered {response.status_code}: {response.text}")

        await timed(20, send)  # the producer connects on the first command: not counted
        return await timed(n, send)


async def run(n: int) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    say(f"{n} PostMessage commands one at a time to {bootstrap}, bare producer then gateway")
    await baseline(bootstrap, 20)  # warm-up: the topic's metadata, the broker's caches
    rows = []
    for name, measure in (("bare producer", baseline), ("POST /commands", through_the_gateway)):
        took = await measure(bootstrap, n)
        rows.append(
            [
                name,
                f"{percentile(took, 50):.1f}",
                f"{percentile(took, 95):.1f}",
                f"{percentile(took, 99):.1f}",
                f"{n / (sum(took) / 1000):.0f}",
            ]
        )
    print(
        table(
            "One command, sent and acknowledged by Kafka (acks=all), ms",
            ["path", "p50", "p95", "p99", "commands/s, one at a time"],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="commands per path")
    asyncio.run(run(parser.parse_args().n))


if __name__ == "__main__":
    main()
