"""kill -9 of each of the three services, at random points, while a mixed stream goes on
(offers accepted, withdrawn, declined, refused; chat and counter-proposals), all three
running together and judged by the one verdict over the wire and all three databases.
(tests/e2e/test_kill_nine*.py kill one service on one kind of traffic; this mixes both.)"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from faults.system import System
from faults.traffic import Ledger, interleave
from faults.verdict import Databases, settle
from faults.wire import Recorder, Sender
from services.processes import SERVICES

pytestmark = pytest.mark.e2e

OFFERS = 30
CHUNK = 12  # records published at a time, every PACE seconds
PACE = 0.15


async def test_kill_nine_of_each_service_mid_stream_loses_and_doubles_nothing(
    system: System, recorder: Recorder, sender: Sender, databases: Databases
) -> None:
    rng = random.Random(9)
    ledger = Ledger("kill -9 of each service mid-stream")
    steps = interleave(ledger.mixed(OFFERS, rng), rng)
    victims = list(SERVICES)  # each once: a kill costs a consumer-group rebalance
    rng.shuffle(victims)
    kills: list[str] = []

    async def stream() -> None:
        for start in range(0, len(steps), CHUNK):
            await sender.send_all(steps[start : start + CHUNK])
            await asyncio.sleep(PACE)

    async def chaos() -> None:
        for victim in victims:
            await asyncio.sleep(rng.uniform(0.2, 1.2))
            kills.append(victim)
            await system.restart(victim)  # SIGKILL, then start again

    began = time.monotonic()
    await asyncio.gather(stream(), chaos())
    verdict = await settle(ledger, recorder, databases, within=120)
    print(f"\n{verdict.report()}\n  kills: {kills} ({time.monotonic() - began:.1f}s)")
    assert verdict.passed, verdict.report()
