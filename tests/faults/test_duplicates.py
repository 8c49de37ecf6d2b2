"""Every command delivered twice — some copies right after the first, some much later —
changes nothing: one outcome per command, nothing doubled anywhere (issue 7.4)."""

from __future__ import annotations

import random
import time

import pytest

from faults.system import System
from faults.traffic import Ledger, interleave
from faults.verdict import Databases, settle
from faults.wire import Recorder, Sender, Step

pytestmark = pytest.mark.e2e

OFFERS = 40


def twice(steps: list[Step], rng: random.Random) -> list[Step]:
    """Each step followed by its copy: half of them adjacent, half somewhere later."""
    keyed: list[tuple[float, int, Step]] = []
    for n, step in enumerate(steps):
        keyed.append((n, 0, step))
        later = n + 0.5 if rng.random() < 0.5 else rng.uniform(n + 1, len(steps) + 10)
        keyed.append((later, 1, step))
    return [step for _, _, step in sorted(keyed, key=lambda k: (k[0], k[1]))]


async def test_every_command_delivered_twice_doubles_nothing(
    system: System, recorder: Recorder, sender: Sender, databases: Databases
) -> None:
    rng = random.Random(71)
    ledger = Ledger("every command delivered twice")
    steps = interleave(ledger.mixed(OFFERS, rng), rng)
    began = time.monotonic()
    await sender.send_all(twice(steps, rng))
    verdict = await settle(ledger, recorder, databases, within=90)
    print(f"\n{verdict.report()}\n  ({time.monotonic() - began:.1f}s)")
    assert verdict.passed, verdict.report()
