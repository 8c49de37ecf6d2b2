"""Accept/withdraw races (100 in CI, FAULTS_RACES=1000 or `python -m faults races` for
the full 1,000): for each pending offer, the freelancer's AcceptOffer and the
client's WithdrawOffer published back to back in random order. Each offer ends accepted
with exactly one contract or withdrawn with none; exactly one of OfferAccepted and
OfferWithdrawn; the loser refused (issue 7.4)."""

from __future__ import annotations

import os
import random
import time

import pytest

from faults.system import System
from faults.traffic import Ledger
from faults.verdict import Databases, settle
from faults.wire import Recorder, Sender

pytestmark = pytest.mark.e2e

# CI runs 100 races to stay within its time; `python -m faults races` runs the 1,000.
RACES = int(os.environ.get("FAULTS_RACES", "100"))


async def test_accept_withdraw_races_have_exactly_one_winner(
    system: System, recorder: Recorder, sender: Sender, databases: Databases
) -> None:
    rng = random.Random(1000)
    ledger = Ledger(f"{RACES:,} accept/withdraw races")
    stories = [ledger.race(rng) for _ in range(RACES)]
    began = time.monotonic()
    # Every offer extended, then each pair back to back (in its own random order).
    await sender.send_all([story[0] for story in stories] + [s for t in stories for s in t[1:]])
    verdict = await settle(ledger, recorder, databases, within=150)
    print(f"\n{verdict.report()}\n  ({time.monotonic() - began:.1f}s)")
    assert verdict.passed, verdict.report()
