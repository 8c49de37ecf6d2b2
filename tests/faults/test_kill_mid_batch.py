"""kill -9 of a service in the middle of a batch, at the two points where a crash is worst:

  A  after_write     its changes are stored (each aggregate with its outbox), nothing of
                     them published yet
  B  before_commit   stored and published (the outboxes marked by the records that wrote
                     them, not emptied), the offsets not committed: the whole batch comes
                     again after the restart

The victim runs with FAULT_CRASH_AT (services.runtime.crash), so it kills itself exactly
there, on its FAULT_CRASH_AFTER-th pass, in the middle of a burst of ExtendOffer commands.
At the moment of the kill (the victim is dead: what is stored and what is on the wire no
longer change on its side) it is judged that nothing was published early:
  - every event of the run the victim published is of something it stored;
  - at A, the crash left stored messages that are not on the wire, its own internal
    topic included (it struck after a write, before the publish);
  - at B, every message an outbox holds is on the wire (what was stored was published
    before the commit).
Then it is started again without the crash point, and the one verdict (faults/verdict.py)
judges the run once it has settled: every command one outcome, every offer stored once,
every OfferExtended published, one NotificationCreated per (event, recipient). Repeats of
the same event_id on a topic, which the verdict allows (the same event), are counted apart
and must be none at A (nothing of the crashed batch was out before the crash). At B they
are allowed: the restarted victim finds the batch's outboxes marked by records whose
offsets were never committed, cannot know that the publish happened, and publishes them
again with their ids (at-least-once; consumers dedupe by event_id). They must be messages
of the crashed batch's offers only, which the ledger's scope already narrows them to.

The victims are the fault tests' one system (a second system beside it would handle the
same topics' records too). While it is to crash, the victim runs one consumer
(KAFKA_CONSUMERS=1), so the crash point stops all its work at one place: with several,
another consumer may be between its publish and its outbox clear when the first kills
the process, which is not "published early".
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict

import pytest

from contracts import topics
from faults.system import System
from faults.traffic import Ledger
from faults.verdict import Check, Databases, scope, sent_ids, settle
from faults.wire import Recorder, Sender, message_ids
from services.runtime.crash import POINTS

pytestmark = pytest.mark.e2e

VICTIMS = ("offer_service", "notification_service")
BURST = 50  # ExtendOffer commands, one per offer, sent at once
CRASH_AFTER = 1  # the crash point kills on its 1st pass: the first batch of the burst
CRASH_LINE = "crash point {point}: killing this process as FAULT_CRASH_AT asks"


async def at_the_kill(
    ledger: Ledger,
    victim: str,
    point: str,
    system: System,
    recorder: Recorder,
    databases: Databases,
) -> Check:
    """What the dead victim had stored against what it had published."""
    check = Check(f"at the kill ({point}): nothing published that is not stored")
    await recorder.catch_up()
    wire = scope(ledger, recorder.records)
    stored = await databases.read()
    outboxes = await databases.outboxes(victim)
    # (The recorder is shared with the other fault tests: hostile records have no event_id.)
    on_the_wire = sent_ids(recorder.records)
    internal = topics.internal(system.services[victim].env["KAFKA_GROUP_ID"])
    on_the_wire |= await message_ids(system.bootstrap, internal)

    # Every event of the run the victim published is of something it stored.
    if victim == "offer_service":
        published = [r.value for records in wire.by_offer.values() for r in records]
        for event in published:
            document = stored.offers.get(event["offer_id"])
            if document is None or document["version"] < event.get("version", 0):
                check.wrong.append(
                    f"{event['type']} {event['event_id']} published, its offer "
                    f"{event['offer_id']} not stored (as {event.get('version')})"
                )
    else:
        published = [r.value for r in wire.notifications]
        kept = {d["_id"] for d in stored.notifications}
        for event in published:
            if event["notification_id"] not in kept:
                check.wrong.append(
                    f"NotificationCreated {event['event_id']} published, notification "
                    f"{event['notification_id']} not stored"
                )
    # What an outbox holds and is not on the wire: the crashed batch's (at A), none (at B).
    held = [(c, i, entry) for c, i, outbox in outboxes for entry in outbox]
    pending = [(c, i, entry) for c, i, entry in held if entry["event_id"] not in on_the_wire]
    if point == "before_commit":
        for collection, document_id, entry in pending:
            check.wrong.append(
                f"{collection} {document_id}: {entry['type']} {entry['event_id']} stored, "
                "not published when the offsets were to be committed"
            )
    elif not pending:
        check.wrong.append("no stored message awaits publishing: the crash was not after a write")
    check.total = len(published) + len(held)
    check.note = (
        f"{len(published)} of the run's events out, {len(held)} messages in outboxes, "
        f"{len(pending)} of them unpublished"
    )
    return check


def repeats(ledger: Ledger, recorder: Recorder) -> Check:
    """The same event_id more than once on a topic (the verdict takes it as one event)."""
    check = Check("repeats: no event_id on its topic twice")
    copies: dict[tuple[str, str], int] = defaultdict(int)
    for event_id, records in scope(ledger, recorder.records).events.items():
        for record in records:
            copies[(record.topic, event_id)] += 1
    check.total = len(copies)
    for (topic, event_id), n in sorted(copies.items()):
        if n > 1:
            check.wrong.append(f"{event_id} on {topic} {n} times")
    return check


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("victim", VICTIMS)
async def test_kill_mid_batch_loses_doubles_and_publishes_early_nothing(
    victim: str,
    point: str,
    system: System,
    recorder: Recorder,
    sender: Sender,
    databases: Databases,
) -> None:
    ledger = Ledger(f"kill -9 of {victim} at {point}, mid-batch")
    log_path = system.services[victim].log_path
    await system.restart(
        victim,
        env={
            "FAULT_CRASH_AT": point,
            "FAULT_CRASH_AFTER": str(CRASH_AFTER),
            "KAFKA_CONSUMERS": "1",
        },
    )
    log_from = log_path.stat().st_size  # its log goes on from earlier starts
    burst = []
    for _ in range(BURST):
        parties = ledger.parties("extended")
        ledger.final_status[parties.offer_id] = "pending"
        burst.append(ledger.extend(parties))

    began = time.monotonic()
    await sender.send_all(burst)
    status = await system.exited(victim, within=90)
    died = time.monotonic() - began
    with log_path.open("rb") as file:
        file.seek(log_from)
        log = file.read().decode(errors="replace")
    assert status == -signal.SIGKILL, (
        f"{victim} did not kill itself at {point} (exit status {status}); log:\n{log[-3000:]}"
    )
    assert CRASH_LINE.format(point=point) in log, "killed, but not by its crash point"
    kill = await at_the_kill(ledger, victim, point, system, recorder, databases)

    await system.restart(victim)  # without FAULT_CRASH_AT
    verdict = await settle(ledger, recorder, databases, within=120)
    repeated = repeats(ledger, recorder)
    print(
        f"\n{verdict.report()}\n{kill.line()}\n{repeated.line()}\n"
        f"  {victim} died {died:.1f}s into the burst; settled {time.monotonic() - began:.1f}s"
    )
    assert kill.passed, kill.line()
    assert verdict.passed, verdict.report()
    if point == "after_write":  # (at B, at-least-once: see the module's docstring)
        assert repeated.passed, repeated.line()
