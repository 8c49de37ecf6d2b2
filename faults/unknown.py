"""Commands for offers and contracts nobody created, mixed into valid traffic (issue: a
command for an unknown offer must not stall anyone else), and the time a service killed
with -9 takes to handle commands again.

unknown-aggregates: three phases on the same system, each streaming the same shape of
valid traffic (chat stories: extend, two messages, a counter-proposal, a change):
  baseline  the valid traffic alone: each command's latency, from its publish to its
            outcome on the wire;
  mixed     the same with N commands for unknown offers (PostMessage) and contracts
            (LogTime) among it: the valid commands' latency beside the baseline's, and
            each unknown one refused once, after its wait;
  restart   the same again, with messaging_service and offer_service killed (-9) and
            started again mid-stream: nothing lost, nothing doubled.
The services run with UNKNOWN_OFFER_WAIT_MS at its default (5 s) for this fault.

recovery: a steady stream of offers; offer_service is killed (-9) and started again at
once; the time from the kill to the first command it handles again, with static group
membership (the default) and without it (KAFKA_STATIC_MEMBERSHIP=false: what a restart
cost before).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid

from contracts import topics

from .traffic import Ledger, new_id
from .verdict import OUTCOME_TOPICS
from .wire import Recorder, Sender, Step

WAIT_MS = "5000"  # the services' default bounded wait


def unknown_commands(ledger: Ledger, count: int, rng: random.Random) -> list[Step]:
    """Messages for offers and time for contracts that nobody created: each must be refused
    once, unknown_offer or unknown_contract, after its wait."""
    steps = []
    for n in range(count):
        if n % 10 < 7:
            offer_id = new_id("ghost-offer")
            message = ledger.command(
                "PostMessage",
                new_id("ghost"),
                offer_id,
                "rejected",
                "unknown_offer",
                offer_id=offer_id,
                message_id="m-1",
                text="Is anyone there?",
            )
            steps.append(Step(topics.NEGOTIATIONS_COMMANDS, offer_id, message))
        else:
            contract_id = str(uuid.uuid4())
            message = ledger.command(
                "LogTime",
                new_id("ghost"),
                contract_id,
                "rejected",
                "unknown_contract",
                contract_id=contract_id,
                entry_id=new_id("entry"),
                work_date=time.strftime("%Y-%m-%d"),
                hours="2.00",
            )
            steps.append(Step(topics.CONTRACTS_COMMANDS, contract_id, message))
    rng.shuffle(steps)
    return steps


async def stream(
    sender: Sender,
    valid: list[list[Step]],
    extra: list[Step],
    *,
    seconds: float,
    sent_at: dict[str, float],
) -> None:
    """The valid stories, in order each, 4 at a time, and the extra records at a steady pace
    beside them, all over about `seconds`; when each command was acknowledged (`sent_at`)."""
    queue = list(reversed(valid))
    pace = seconds * 4 / max(len(valid), 1)

    def sent(step: Step) -> None:
        assert isinstance(step.value, dict)
        sent_at[step.value["command_id"]] = time.time()

    async def stories() -> None:
        while queue:
            for step in queue.pop():
                await sender.send_reliably(step)
                sent(step)
            await asyncio.sleep(pace)

    async def extras() -> None:
        batch = max(1, len(extra) // max(1, int(seconds * 10)))
        for start in range(0, len(extra), batch):
            await sender.send_all(extra[start : start + batch])
            for step in extra[start : start + batch]:
                sent(step)
            await asyncio.sleep(0.1)

    await asyncio.gather(*(stories() for _ in range(4)), extras())


def latencies(recorder: Recorder, sent_at: dict[str, float], of: set[str]) -> list[float]:
    """From each command's publish to its outcome's (an event it caused, or its refusal),
    for the commands `of`."""
    first: dict[str, float] = {}
    for record in recorder.records:
        value = record.value
        if not isinstance(value, dict):
            continue
        if record.topic in OUTCOME_TOPICS:
            command_id = value.get("causation_id")
        elif record.topic == topics.COMMANDS_REJECTED:
            command_id = value.get("command_id")
        else:
            continue
        if command_id in of and command_id in sent_at and command_id not in first:
            first[command_id] = record.timestamp - sent_at[command_id]
    return [max(0.0, seconds) for seconds in first.values()]


def summary(name: str, seconds: list[float]) -> str:
    if not seconds:
        return f"{name}: none"
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name}: {len(ordered):,}, p50 {statistics.median(ordered):.2f}s, p99 {p99:.2f}s, "
        f"min {ordered[0]:.2f}s, max {ordered[-1]:.2f}s"
    )
