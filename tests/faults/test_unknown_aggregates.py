"""Commands for offers and contracts nobody created, among valid chat traffic, with
messaging_service and offer_service killed (-9) mid-stream: each unknown one refused once
after its wait, every valid one handled once (the CI size of `python -m faults
unknown-aggregates`, which also prints the latencies beside the same traffic alone)."""

from __future__ import annotations

import asyncio

import pytest

from faults.scripts import Rig, restart_with, unknown_phase
from faults.system import System
from faults.unknown import WAIT_MS
from faults.verdict import Databases
from faults.wire import Recorder, Sender

pytestmark = pytest.mark.e2e

WAITING = ("messaging_service", "offer_service")


async def test_unknown_aggregates_refused_once_each_and_the_rest_unharmed(
    system: System, recorder: Recorder, sender: Sender, databases: Databases
) -> None:
    rig = Rig(system, recorder, sender, databases)
    usual = system.services["messaging_service"].env["UNKNOWN_OFFER_WAIT_MS"]
    await restart_with(rig, WAITING, UNKNOWN_OFFER_WAIT_MS=WAIT_MS)

    async def kill_both() -> None:
        await asyncio.sleep(6)
        for name in WAITING:
            await system.restart(name)

    try:
        verdict, valid, refused = await unknown_phase(
            rig, "CI", stories=30, unknown=150, seconds=15, strike=kill_both
        )
    finally:
        await restart_with(rig, WAITING, UNKNOWN_OFFER_WAIT_MS=usual)
    assert verdict.passed, verdict.report()
    assert len(refused) == 150 and min(refused) >= 4.5  # each after its 5 s wait
    assert len(valid) == 150
