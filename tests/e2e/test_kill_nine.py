"""No state change without its event, no event without its state change, even when
offer_service is killed with SIGKILL at any point while commands stream in (issue 3.6)."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from contracts import topics
from tests.conftest import RUN_ID
from tests.e2e.processes import launch
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, command, hourly_terms, of_type

pytestmark = pytest.mark.e2e

OFFERS = 40


def get_json(url: str, actor: str | None = None) -> Any:
    """A read API's answer, read on behalf of ``actor`` (every read names its reader)."""
    headers = {"X-Actor-Id": actor} if actor else {}
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=5
    ) as response:
        return json.load(response)


async def test_kill_nine_loses_and_doubles_nothing(
    infra: Endpoints, producer: Producer, probe: Probe, tmp_path: Path
) -> None:
    service = await launch("offer_service", 18101, infra, tmp_path, RUN_ID + "k9")
    await asyncio.to_thread(service.wait_healthy)
    offers = [Parties() for _ in range(OFFERS)]
    rng = random.Random(7)

    async def stream() -> None:
        for parties in offers:
            script = [
                parties.extend(),
                command(
                    "ChangeOffer",
                    parties.client_id,
                    offer_id=parties.offer_id,
                    terms=hourly_terms(hourly_rate="50.00"),
                ),
                command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=2),
            ]
            for message in script:
                await producer.send(topics.OFFERS_COMMANDS, message, parties.offer_id)
                if rng.random() < 0.3:
                    # Redeliver a command as a producer retry would.
                    await producer.send(topics.OFFERS_COMMANDS, message, parties.offer_id)
            await asyncio.sleep(0.03)

    async def chaos() -> None:
        for _ in range(3):
            await asyncio.sleep(rng.uniform(0.2, 0.8))
            service.kill()
            service.start()
            await asyncio.to_thread(service.wait_healthy)

    try:
        await asyncio.gather(stream(), chaos())
        for parties in offers:
            await probe.wait_for(
                of_type("ContractActivated", offer_id=parties.offer_id), within=120
            )
        await probe.quiet(2)
    finally:
        service.stop()

    events: dict[tuple[str, str], set[str]] = defaultdict(set)
    for seen in probe.seen:
        value = seen.value
        if (
            isinstance(value, dict)
            and "offer_id" in value
            and value.get("type") != "CommandRejected"
        ):
            events[(value["offer_id"], value["type"])].add(value["event_id"])
    for parties in offers:
        for type_ in ("OfferExtended", "OfferChanged", "OfferAccepted", "ContractActivated"):
            ids = events[(parties.offer_id, type_)]
            # Repeats on the wire are allowed, but only as the same event (same event_id).
            assert len(ids) == 1, f"{parties.offer_id} {type_}: {ids}"
    service.start()
    await asyncio.to_thread(service.wait_healthy)
    try:
        for parties in offers:
            offer = await asyncio.to_thread(
                get_json, f"{service.url}/offers/{parties.offer_id}", parties.client_id
            )
            assert offer["status"] == "accepted" and offer["version"] == 2
    finally:
        service.stop()
