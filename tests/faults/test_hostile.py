"""1,000 records from a hostile producer among valid traffic for offers on every partition
(issue "No poison record"): dates at the end of the calendar, NUL characters in keys and
text, commands keyed by another id or by none, custom-field keys a database reads as paths,
integers beyond 64 bits, nesting 100,000 deep, and the malformed kinds of
test_malformed.py. Every one gets exactly one outcome, every valid command is handled, and
the stories sent after them all are handled too: no partition stalls."""

from __future__ import annotations

import random
import time

import pytest

from faults.system import System
from faults.traffic import HOSTILE_KINDS, MALFORMED_KINDS, Ledger, send_among_stories
from faults.verdict import Databases, settle
from faults.wire import Recorder, Sender

pytestmark = pytest.mark.e2e

HOSTILE = 1000
OFFERS = 30
LAST = 6  # stories sent after every hostile record
KINDS = (*HOSTILE_KINDS, *HOSTILE_KINDS, "deep-nesting", *MALFORMED_KINDS[:4])


async def test_hostile_records_each_get_one_outcome_and_stall_no_partition(
    system: System, recorder: Recorder, sender: Sender, databases: Databases
) -> None:
    rng = random.Random(2000)
    ledger = Ledger("1,000 hostile records among valid traffic")
    stories = ledger.mixed(OFFERS, rng)
    bad = [ledger.malformed_record(n, rng, KINDS[n % len(KINDS)]) for n in range(HOSTILE)]
    rng.shuffle(bad)
    began = time.monotonic()
    written = await send_among_stories(sender, stories, bad, rng, last=LAST)
    partitions = {(p.topic, p.partition) for p in written}
    verdict = await settle(ledger, recorder, databases, within=120)
    print(
        f"\n{verdict.report()}\n  ({time.monotonic() - began:.1f}s, {len(partitions)} partitions)"
    )
    assert verdict.passed, verdict.report()
