"""1,000 malformed records among valid traffic: every one dead-lettered (bytes unchanged) or
refused exactly once, all the valid traffic handled, no consumer stuck (issue 7.4)."""

from __future__ import annotations

import random
import time

import pytest

from faults.system import System
from faults.traffic import RARE_KINDS, Ledger, send_among_stories
from faults.verdict import Databases, settle
from faults.wire import Recorder, Sender

pytestmark = pytest.mark.e2e

MALFORMED = 1000
RARE_EACH = 5  # tombstones (no value at all); over 1 MiB: test_oversized.py
OFFERS = 30
LAST = 6  # stories sent after every malformed record


async def test_malformed_records_are_each_dead_lettered_or_refused_once(
    system: System, recorder: Recorder, sender: Sender, databases: Databases
) -> None:
    rng = random.Random(1000)
    ledger = Ledger("1,000 malformed records among valid traffic")
    stories = ledger.mixed(OFFERS, rng)
    common = MALFORMED - RARE_EACH * len(RARE_KINDS)
    bad = [ledger.malformed_record(n, rng) for n in range(common)]
    bad += [ledger.malformed_record(n, rng, kind) for kind in RARE_KINDS for n in range(RARE_EACH)]
    rng.shuffle(bad)
    began = time.monotonic()
    await send_among_stories(sender, stories, bad, rng, last=LAST)
    verdict = await settle(ledger, recorder, databases, within=90)
    print(f"\n{verdict.report()}\n  ({time.monotonic() - began:.1f}s)")
    assert verdict.passed, verdict.report()
