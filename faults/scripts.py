"""The faults that disrupt the shared infrastructure (and, with a name, the CI faults at
full size), as scripts: each streams a mixed load, strikes, waits for the system to
recover on its own, and prints the verdict."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from services.processes import SERVICES

from .system import System, infra
from .traffic import Ledger, interleave, scatter
from .verdict import Databases, Verdict, settle
from .wire import Recorder, Sender, Step


def say(message: str) -> None:
    print(f"[faults] {message}", flush=True)


@dataclass
class Rig:
    system: System
    recorder: Recorder
    sender: Sender
    databases: Databases


async def stream_stories(
    sender: Sender, stories: list[list[Step]], *, seconds: float, in_flight: int = 4
) -> None:
    """Publishes each story in order, one record at a time with retries (so a broker outage
    only delays it), `in_flight` stories at a time, spread over about `seconds`."""
    queue = list(reversed(stories))
    pace = seconds * in_flight / max(len(stories), 1)

    async def worker() -> None:
        while queue:
            story = queue.pop()
            for step in story:
                await sender.send_reliably(step)
            await asyncio.sleep(pace)

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def restart_mid_stream(rig: Rig, component: str, *, offers: int, down: float) -> Verdict:
    """Streams `offers` mixed stories; a few seconds in, stops `component` (SIGTERM, as
    infra/infra.py does), keeps it down for `down` seconds, starts it again."""
    rng = random.Random()
    what = {"kafka": "Kafka broker", "postgres": "database (PostgreSQL, under FerretDB)"}[component]
    ledger = Ledger(f"{what} restart mid-stream")
    stories = ledger.mixed(offers, rng)
    began = time.monotonic()

    sent_before = 0

    async def strike() -> None:
        nonlocal sent_before
        await asyncio.sleep(4)
        sent_before = rig.sender.sent
        say(f"stopping {component} mid-stream ({sent_before} commands published so far)...")
        await asyncio.to_thread(infra, "stop", component)
        await asyncio.sleep(down)
        say(f"starting {component} again...")
        await asyncio.to_thread(infra, "start", component)
        say(f"{component} back after {time.monotonic() - began:.1f}s of the run")

    try:
        await asyncio.gather(stream_stories(rig.sender, stories, seconds=20), strike())
    finally:
        await asyncio.to_thread(infra, "up")  # whatever happened, leave it all running
    say(
        f"stream done: {rig.sender.sent - sent_before} commands published from the strike on, "
        f"{rig.sender.retries} send retries; waiting for the services to catch up..."
    )
    verdict = await settle(
        ledger, rig.recorder, rig.databases, within=240, progress=lambda m: say(m)
    )
    verdict.summary += f"; {time.monotonic() - began:.0f}s"
    return verdict


async def broker_restart(rig: Rig) -> Verdict:
    return await restart_mid_stream(rig, "kafka", offers=60, down=5)


async def database_restart(rig: Rig) -> Verdict:
    # PostgreSQL holds the data; FerretDB in front of it stays up and answers with errors
    # while it is down, which is the harder case for the services.
    return await restart_mid_stream(rig, "postgres", offers=60, down=5)


async def races(rig: Rig) -> Verdict:
    rng = random.Random()
    ledger = Ledger("1,000 accept/withdraw races")
    stories = [ledger.race(rng) for _ in range(1000)]
    began = time.monotonic()
    await rig.sender.send_all([s[0] for s in stories] + [s for t in stories for s in t[1:]])
    # A generous bound for 3,000 commands on two cores (README, Fault injection: the time
    # it took is printed with the verdict).
    verdict = await settle(ledger, rig.recorder, rig.databases, within=900, progress=say)
    verdict.summary += f"; {time.monotonic() - began:.0f}s"
    return verdict


async def malformed(rig: Rig) -> Verdict:
    rng = random.Random()
    ledger = Ledger("1,000 malformed records among valid traffic")
    stories = ledger.mixed(60, rng)
    bad = [ledger.malformed_record(n, rng) for n in range(995)]
    bad += [ledger.malformed_record(n, rng, "tombstone") for n in range(5)]
    rng.shuffle(bad)
    ordered = scatter(interleave(stories, rng), [m.step for m in bad], rng)
    written = await rig.sender.send_all(ordered)
    where = {id(step): position for step, position in zip(ordered, written, strict=True)}
    for m in bad:
        m.position = where[id(m.step)]
    return await settle(ledger, rig.recorder, rig.databases, within=600, progress=say)


FAULTS: dict[str, Callable[[Rig], Awaitable[Verdict]]] = {
    "broker-restart": broker_restart,
    "database-restart": database_restart,
    "races": races,
    "malformed": malformed,
}
DEFAULT = ("broker-restart", "database-restart")
BASE_PORT = 18601


async def run(names: list[str]) -> bool:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    mongodb_url = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")
    logs = Path(tempfile.mkdtemp(prefix="faults-"))
    say(f"infrastructure: Kafka {bootstrap}, database {mongodb_url}")
    await asyncio.to_thread(infra, "up")
    system = System(
        run_id=os.urandom(4).hex(),
        bootstrap=bootstrap,
        mongodb_url=mongodb_url,
        log_dir=logs,
        base_port=BASE_PORT,
    )
    say(f"starting {', '.join(SERVICES)} on ports {BASE_PORT}-{BASE_PORT + 2}; logs in {logs}")
    recorder, sender = Recorder(bootstrap), Sender(bootstrap)
    databases = Databases(mongodb_url, system.databases)
    verdicts: list[Verdict] = []
    try:
        await recorder.start()
        await sender.start()
        await system.start()
        rig = Rig(system, recorder, sender, databases)
        for name in names:
            say(f"fault: {name}")
            verdict = await FAULTS[name](rig)
            print(verdict.report(), flush=True)
            verdicts.append(verdict)
            dead = [n for n, alive in system.alive().items() if not alive]
            if dead:
                say(f"services that died: {dead} (logs in {logs})")
    finally:
        system.stop()
        await sender.stop()
        await recorder.stop()
        await databases.close()
        await asyncio.to_thread(infra, "up")
    print()
    for verdict in verdicts:
        print(f"{'PASS' if verdict.passed else 'FAIL'}  {verdict.name} — {verdict.summary}")
    return len(verdicts) == len(names) and all(v.passed for v in verdicts)
