"""Records over 1 MiB on a command topic (SPEC §4: dead-lettered, bytes unchanged, and the
consumer carries on). Named to run last in tests/faults: it raises the command topics'
record limit, and a consumer that could not dead-letter such a record would stall on it."""

from __future__ import annotations

import random
import time

import pytest

from contracts import topics
from faults.system import System
from faults.traffic import Ledger
from faults.verdict import Databases, settle
from faults.wire import Recorder, Sender, Step, allow_large_records
from tests.infrastructure import Endpoints

pytestmark = pytest.mark.e2e

OVERSIZED = 3


async def test_records_over_1_mib_are_dead_lettered_and_the_consumer_carries_on(
    infra: Endpoints, system: System, recorder: Recorder, sender: Sender, databases: Databases
) -> None:
    await allow_large_records(infra.kafka_bootstrap_servers)
    rng = random.Random(1)
    ledger = Ledger("records over 1 MiB")
    steps = []
    for n in range(OVERSIZED):
        big = ledger.malformed_record(n, rng, "over-1-mib")
        story = ledger.declined(rng)
        # The oversized record in the same partition as the valid story after it.
        big.step = Step(topics.OFFERS_COMMANDS, story[0].key, big.step.value)
        steps += [big.step, *story]
    began = time.monotonic()
    written = await sender.send_all(steps)
    for m in ledger.malformed:
        m.position = written[steps.index(m.step)]
    verdict = await settle(ledger, recorder, databases, within=15, quiet=1)
    print(f"\n{verdict.report()}\n  ({time.monotonic() - began:.1f}s)")
    assert verdict.passed, verdict.report()
