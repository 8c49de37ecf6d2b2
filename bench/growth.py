"""Growth: the cost of one command, and the expiry sweep, with many offers stored.

The offers are inserted straight into a database of offer_service's (insert_many batches)
in exactly the shape offer_service's store leaves an offer after its events are published:
the template is one offer written through the real path (parse_command → domain.extend →
UnitOfWork.commit: the insert with its outbox, the publish, the outbox cleared) and read
back; copies differ in ids, parties and times, and each carries the `due_bucket` of its own
expires_at (services.runtime.due). One offer in 100 expired an hour before the run started
and is still pending (its sweep has not run yet), the rest expire 30 days after: the 1 % are
really due, for the sweeps timed here and for a running offer_service's handler alike. The
sweep's cursor (the `sweeps` document) stays past them, where offer_service's start leaves
it, except while the sweep is timed, so the services the run starts meanwhile never find them.

At each size (default 10k, then topped up to 100k, then to 1M):
- after the bulk load, a pause (--settle) while PostgreSQL checkpoints and vacuums;
- direct store timings, the median of 50 each: offers.get of a random stored offer; the
  unit of work's commit of a new offer (what an ExtendOffer writes), split at its publish
  (a recording function, no Kafka) into the insert and the clearing of the outbox;
- the end-to-end extend rate with offer_service and notification_service as processes
  (N commands, capped by a time limit: the rate is what completed within it);
- the sweep, with the sweep's cursor at the due offers' bucket, as a service sweeping all
  along would have left it: the query plan FerretDB reports for one bucket; finding the due
  offers (every bucket from the cursor to a clock 2 days ahead, nothing written); and the
  full pass, the sweep finding and asking for each due offer's expiry as offer_service's
  asking sweep does (a page of ExpireOffer at a time through Requests, published together):
  once as the first pass after a start (to a topic of the run's own that nobody reads),
  then as the pass after one that read them ahead (30 s before and after they fell due),
  this time to the internal topic of a running offer_service process (its own sweep held
  off: EXPIRY_SWEEP_INTERVAL_SECONDS a day, its one pass at start done before the cursor is
  set), keyed by offer id. Found and asked for: until that pass had published every
  ExpireOffer; all expired: from the pass's start until offers.events carried an
  OfferExpired for every due offer (published only once the offer is stored expired).
  The expired offers are then put back as they were, and offer_service started once more
  (sweeping every 30 s), the cursor past them; once it runs, the cursor goes back to their
  bucket, and its next pass finds them all past due (a service catching up after a stop)
  and asks its own consumers, which take each offer as the pass read it
  (services.runtime.batch, StateCache.see) instead of reading it again. Timed, and its CPU
  counted, from its first ExpireOffer on the internal topic to the last OfferExpired. Then
  the offers are put back again, and the plain limit expires them (their ids read, two
  update_many of their bucket side by side, an OfferExpired each published together: the
  least work that does the job on this database, timed the same way in the same run).
  Then they are put back once more, and the cursor past them, so the next size again has
  1 % due.
Each size's costs are printed beside the first size's, as a ratio (goal: 1M within 1.5x of
10k).

    python -m bench.growth [--sizes 10000,100000,1000000] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from contracts import OFFER_COMMAND_ADAPTER, ExtendOffer, OfferExpired, parse_command, topics
from contracts.internal import ExpireOffer
from services.offer_service.domain import offer as offer_rules
from services.offer_service.domain.offer import Policy
from services.offer_service.store import OfferStore
from services.rules import OfferStatus, Rejection, derived_id
from services.runtime.clock import utc_now
from services.runtime.config import bootstrap_list
from services.runtime.documents import MongoDocuments
from services.runtime.due import CLOCK_SKEW, DueBuckets, due_bucket
from services.runtime.due import FIELD as DUE_BUCKET
from services.runtime.kafka import Publishers, ensure_topics
from services.runtime.kafka_access import security_from_env
from services.runtime.outbox import PENDING, OutboxEntry, ensure_outbox_indexes
from services.runtime.requests import Requests, quiet_for
from services.runtime.uow import Stored, UnitOfWork

from .common import (
    INFRA,
    Services,
    add_infra_options,
    drop_databases,
    extend_offer,
    hourly_terms,
    mongo,
    run_id,
    run_with_infra,
    say,
    stamp,
    table,
    today,
)
from .cpu import CpuClock, spent_between
from .throughput import measure_ours
from .watch import Watcher

Document = dict[str, Any]
BATCH = 2000
INTERNAL_TOPIC = "bench.internal"  # recorded, never sent
DUE_EVERY = 100  # one offer in 100 is due for the sweep
DUE_AGO = timedelta(hours=1)  # they fell due this long before the run started
# The expiry phase's offer_service sweeps once at its start, then not again within the run.
HELD_OFF_SWEEP_S = 86_400
SAMPLES = 50  # timed operations per store figure (the median is printed)
# After a bulk load PostgreSQL checkpoints (back to back while 900k offers go in) and
# autovacuums the new rows for a while; a system that grew to 1M over months would not do
# that all at once, so the timings wait this long after the 1M step (less after smaller ones).
SETTLE_S = 120.0
GOAL = 1.5  # the largest size's cost within this many times the first size's
ASK_GOAL_S = 1.0  # every due offer found and asked for within this
EXPIRE_GOAL_S = 10.0  # and every one expired within this
SWEEP_INTERVAL = timedelta(seconds=60)  # offer_service's default: how far a pass reads ahead
# offer_service's own sweep, in the last expiry phase: often enough not to wait long for the
# pass that catches up, seldom enough that it passes once while they expire.
OWN_SWEEP_INTERVAL = timedelta(seconds=30)


@dataclass
class SweepFigures:
    due: int = 0
    buckets: int = 0
    find_s: float = 0.0
    found: int = 0
    on_schedule_s: float = 0.0
    on_schedule_found: int = 0
    # Seconds until the sweep had asked for (published) every due offer's expiry, and the
    # pass's: the first pass after a start; the pass after one that read them ahead (ahead_s).
    cold_ask_s: float = 0.0
    cold_pass_s: float = 0.0
    ahead_s: float = 0.0
    ask_s: float = 0.0
    ask_pass_s: float = 0.0
    asked: int = 0
    # Through the running offer_service: seconds from the start of the pass that asked until
    # offers.events carried an OfferExpired for every due offer, how many did, and the
    # service's own mean handling time of an ExpireOffer (its /metrics).
    expire_s: float = 0.0
    expired: int = 0
    expire_ms: float | None = None
    expire_note: str = ""
    # CPU seconds each part spent meanwhile (bench/cpu.py): what one expiry costs, and where.
    expire_cpu: dict[str, float] = field(default_factory=dict)
    # By offer_service's own sweep, its first pass after a start (everything due is past):
    # seconds from its first ExpireOffer on the internal topic until its last, and until
    # the last OfferExpired; how many; the CPU each part spent from the service's start.
    own_ask_s: float = 0.0
    own_expire_s: float = 0.0
    own_expired: int = 0
    own_cpu: dict[str, float] = field(default_factory=dict)
    own_commands: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # The plain limit (plain_expiry), on the same offers due again: seconds until every
    # OfferExpired was acknowledged, how many, and the CPU each part spent meanwhile.
    plain_s: float = 0.0
    plain_expired: int = 0
    plain_cpu: dict[str, float] = field(default_factory=dict)


@dataclass
class SizeFigures:
    size: int
    insert_rate: float
    get_offer_ms: float
    commit_ms: float
    insert_ms: float
    clear_ms: float
    extend_rate: float | None = None
    extend_note: str = ""
    sweep: SweepFigures | None = None
    plans: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Recorder:
    """A publish function that keeps what it is given, and when it was last called (no
    Kafka): in a commit, the insert is done by then and the outbox not yet cleared."""

    def __init__(self) -> None:
        self.entries: list[OutboxEntry] = []
        self.at = 0.0

    async def __call__(self, entries: Sequence[OutboxEntry]) -> None:
        self.at = time.perf_counter()
        self.entries.extend(entries)


def parsed_extend(tag: str, n: int) -> ExtendOffer:
    raw = json.dumps(extend_offer(tag, n, hourly_terms())).encode()
    command = parse_command(OFFER_COMMAND_ADAPTER, raw, today=today(), max_contract_days=180)
    assert isinstance(command, ExtendOffer), command
    return command


async def commit_offer(
    store: OfferStore, uow: UnitOfWork, recorder: Recorder, command: ExtendOffer
) -> tuple[Stored[Any], float, float]:
    """The commit of the command's new offer, as OfferHandlers._decide writes it (`recorder` is
    the unit of work's publish); returns what was stored and the seconds of the insert (up
    to the publish) and of the rest (the publish, a no-op here, and the outbox cleared)."""
    decision = offer_rules.extend(None, command, uow.clock(), Policy())
    assert not isinstance(decision, Rejection), decision
    started = time.perf_counter()
    stored = await uow.commit(
        store.offers,
        decision.offer,
        expected=None,
        messages=decision.events,
        handled=[command.command_id],
    )
    done = time.perf_counter()
    assert recorder.at >= started, "the commit published nothing"
    return stored, recorder.at - started, done - recorder.at


async def template_offer(store: OfferStore, tag: str) -> Document:
    """One offer through the real path, as the unit of work leaves it once published."""
    recorder = Recorder()
    uow = UnitOfWork(recorder, utc_now, INTERNAL_TOPIC)
    stored, _, _ = await commit_offer(store, uow, recorder, parsed_extend(f"{tag}-template", 0))
    document = await store.offers.documents.get(stored.document["_id"])  # as stored
    assert document is not None
    assert not document.get(PENDING) and recorder.entries, document
    return document


def offer_id(tag: str, i: int) -> str:
    return f"growth-{tag}-{i}"


def copy_of(template: Document, tag: str, i: int, base: datetime) -> Document:
    expires_at = base + (-DUE_AGO if i % DUE_EVERY == 0 else timedelta(days=30))
    return {
        **template,
        "_id": offer_id(tag, i),
        "offer_id": offer_id(tag, i),
        "job_id": f"growth-job-{i}",
        "proposal_id": f"growth-prop-{i}",
        "client_id": f"growth-client-{i % 5000}",
        "freelancer_id": f"growth-free-{i % 20000}",
        "expires_at": expires_at,
        DUE_BUCKET: due_bucket(expires_at),
        "versions": [dict(template["versions"][0], sent_at=base)],
        "created_at": base,
        "updated_at": base,
        "handled": [f"growth-cmd-{tag}-{i}"],
    }


async def fill(
    offers: AsyncCollection[Document],
    template: Document,
    tag: str,
    have: int,
    want: int,
    base: datetime,
) -> float:
    """Inserts offers up to `want`; returns the insert rate (offers/s)."""
    started = time.perf_counter()
    next_line = started + 10
    for start in range(have, want, BATCH):
        stop = min(want, start + BATCH)
        await offers.insert_many([copy_of(template, tag, i, base) for i in range(start, stop)])
        if time.perf_counter() >= next_line:
            rate = (stop - have) / (time.perf_counter() - started)
            eta = (want - stop) / rate
            say(f"growth: {stop:,}/{want:,} offers stored ({rate:,.0f}/s, ~{eta:.0f}s to go)")
            next_line += 10
    rate = (want - have) / (time.perf_counter() - started)
    say(f"growth: {want:,} offers stored (this step {rate:,.0f} offers/s)")
    return rate


async def settle(seconds: float) -> None:
    if seconds < 1:
        return
    say(f"growth: letting the database settle after the bulk load, {seconds:.0f}s")
    deadline = time.perf_counter() + seconds
    while (left := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(min(10, left))
        if left > 10:
            say(f"growth: settling, {left - 10:.0f}s to go")


async def store_timings(
    store: OfferStore, tag: str, size: int
) -> tuple[float, float, float, float]:
    """Medians of SAMPLES offers.get of random stored offers, and of SAMPLES commits of new
    ones (the whole commit, its insert and its clearing of the outbox), in ms."""
    picks = random.Random(size).sample(range(size), min(size, SAMPLES))
    for i in picks[:3]:  # warm the connection pool; untimed
        await store.offers.get(offer_id(tag, i))
    gets = []
    for i in picks:
        started = time.perf_counter()
        found = await store.offers.get(offer_id(tag, i))
        gets.append(time.perf_counter() - started)
        assert found is not None, offer_id(tag, i)
    recorder = Recorder()
    uow = UnitOfWork(recorder, utc_now, INTERNAL_TOPIC)
    commits, inserts, clears = [], [], []
    for k in range(SAMPLES):
        command = parsed_extend(f"{tag}-probe{size}", k)
        _, insert_s, clear_s = await commit_offer(store, uow, recorder, command)
        commits.append(insert_s + clear_s)
        inserts.append(insert_s)
        clears.append(clear_s)
    get_ms, commit_ms, insert_ms, clear_ms = (
        1000 * statistics.median(values) for values in (gets, commits, inserts, clears)
    )
    say(
        f"growth {size:,}: medians of {SAMPLES}: offers.get {get_ms:.2f} ms, commit "
        f"{commit_ms:.2f} ms (insert {insert_ms:.2f} ms + publish and clear {clear_ms:.2f} ms)"
    )
    return get_ms, commit_ms, insert_ms, clear_ms


async def explain(database: AsyncDatabase[Document], query: Document) -> str:
    """FerretDB's answer to explain: whether the filter went down to the backend, and the
    backend's plan nodes (with their index names)."""
    explained = await database.command({"explain": {"find": "offers", "filter": query}})
    plan = explained.get("queryPlanner", {})
    plan = plan.get("Plan", plan) if isinstance(plan, dict) else plan
    nodes: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Node Type" in node:
                index = node.get("Index Name")
                nodes.append(node["Node Type"] + (f" ({index})" if index else ""))
            for child in node.get("Plans", []):
                walk(child)

    walk(plan)
    described = " ← ".join(nodes) if nodes else str(plan)[:300]
    return f"filterPushdown={explained.get('filterPushdown')}: {described}"


async def while_running(work: Awaitable[int], every: float, line: Callable[[], str]) -> int:
    """Awaits `work`, printing `line()` every `every` seconds meanwhile."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=every)
        if done:
            return task.result()
        say(line())


def short(n: int) -> str:
    """1M, 100k, 10,000: a size as the goals name it."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 100_000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


@asynccontextmanager
async def publishing(topic: str) -> AsyncIterator[Publishers]:
    """Publishers as a service has them (an idempotent producer), for `topic` on the run's
    Kafka."""
    security = security_from_env()
    await ensure_topics(INFRA.kafka, [topic], security=security)
    broker = KafkaBroker(
        bootstrap_list(INFRA.kafka),
        security=security.faststream_security(),
        enable_idempotence=True,
    )
    publishers = Publishers(broker, [topic])
    await broker.start()
    try:
        yield publishers
    finally:
        await broker.stop()


@asynccontextmanager
async def asking(topic: str) -> AsyncIterator[Requests]:
    """Requests as a service's Kit has them (Publishers.publish_together), publishing to
    `topic` on the run's Kafka."""
    async with publishing(topic) as publishers:
        yield Requests(
            publishers.publish_together,
            topic,
            quiet=quiet_for(SWEEP_INTERVAL.total_seconds()),
        )


async def plain_expiry(
    database: AsyncDatabase[Document], bucket: int, topic: str
) -> tuple[float, int, dict[str, float]]:
    """The plain limit of expiring the due offers: the least work that does the job on this
    database, with nothing of ours in between. It reads the ids (and the event's fields) of
    the pending offers in the due bucket, marks them all expired with two update_many, and
    then publishes an OfferExpired for each, all handed to the producer and awaited together
    (as ours publishes a batch). No outbox, no whole documents read, no revision checks, no
    handler, no second hop. Two update_many side by side, each for half of the ids: on
    FerretDB 1.24 the fastest way found to write them (2026-12-06, 10,000 due among 20,000
    on an idle machine: 8.6 s; one update_many 10.3-11.1 s, four 9.9 s, update_one 16 at a
    time 9.3 s; replacements 16 at a time, as ours, 939-1,247 a second). Returns the seconds
    from its start until every event was acknowledged, how many offers it expired, and the
    CPU each part spent meanwhile."""
    offers = database["offers"]
    pending = {DUE_BUCKET: bucket, "status": OfferStatus.PENDING.value}
    async with publishing(topic) as publishers:
        cpu = CpuClock()
        before = cpu.read()
        started = time.perf_counter()
        now = utc_now()
        due = [
            document
            async for document in offers.find(
                pending, {"_id": 1, "version": 1, "client_id": 1, "freelancer_id": 1}
            )
        ]
        expired = {
            "$set": {
                "status": OfferStatus.EXPIRED.value,
                "closed_at": now,
                DUE_BUCKET: None,
                "updated_at": now,
            }
        }
        # Two halves side by side, split at the middle id: the bucket's filter is the index's,
        # the range is FerretDB's, after reading the bucket.
        middle = sorted(offer["_id"] for offer in due)[len(due) // 2] if due else ""
        halves = await asyncio.gather(
            offers.update_many({**pending, "_id": {"$lt": middle}}, expired),
            offers.update_many({**pending, "_id": {"$gte": middle}}, expired),
        )
        marked = sum(half.modified_count for half in halves)
        await publishers.publish_together(
            [
                OutboxEntry.of(
                    OfferExpired(
                        event_id=derived_id("plain-expiry", offer["_id"]),
                        occurred_at=now,
                        causation_id=derived_id("plain-sweep", str(bucket)),
                        offer_id=offer["_id"],
                        version=offer["version"],
                        client_id=offer["client_id"],
                        freelancer_id=offer["freelancer_id"],
                    ),
                    topic=topic,
                )
                for offer in due
            ]
        )
        seconds = time.perf_counter() - started
        spent = spent_between(before, cpu.read())
    if marked != len(due):
        raise RuntimeError(
            f"the plain limit marked {marked} of the {len(due)} due offers "
            "it read: something else wrote them meanwhile"
        )
    return seconds, len(due), spent


EXPIRED = "OfferExpired"


def ms_per_expiry(seconds: float, expired: int) -> float:
    return 1000 * seconds / max(1, expired)


def per_expiry_line(spent: dict[str, float], expired: int) -> str:
    """CPU milliseconds per expiry, by part, and their total."""
    parts = ", ".join(
        f"{part} {ms_per_expiry(seconds, expired):.2f}" for part, seconds in sorted(spent.items())
    )
    return f"{parts}; total {ms_per_expiry(sum(spent.values()), expired):.2f}"


async def sweep(
    expiry: DueBuckets,
    database: AsyncDatabase[Document],
    template: Document,
    tag: str,
    figures: SizeFigures,
    base: datetime,
    restore: bool,
    expire_within: float,
) -> None:
    size = figures.size
    due_at = base - DUE_AGO
    first = due_bucket(due_at)
    sweeps = database["sweeps"]

    async def cursor_at(bucket: int) -> None:
        await sweeps.update_one({"_id": expiry.name}, {"$set": {"bucket": bucket}}, upsert=True)

    # The cursor where a service sweeping all along would have it: at the bucket of the
    # oldest pending work (nothing before it holds any).
    await cursor_at(first)
    clock = datetime.now(UTC) + timedelta(days=2)
    result = figures.sweep = SweepFigures()
    result.due = len(range(0, size, DUE_EVERY))
    result.buckets = due_bucket(clock) - first + 1

    # Finding the due offers: the bucket reads alone (a handler that takes nothing, so the
    # cursor stays where it is). First as a sweep on schedule finds them, a minute after
    # they fell due (the services sweep every 60 s); then with the clock 2 days ahead.
    async def find(at: datetime) -> tuple[float, int]:
        found = 0

        async def count(document: Document) -> bool:
            nonlocal found
            found += document["expires_at"] <= at
            return False

        started = time.perf_counter()
        await expiry.sweep(at, count)
        return time.perf_counter() - started, found

    on_schedule = due_at + CLOCK_SKEW + timedelta(minutes=1)
    result.on_schedule_s, result.on_schedule_found = await find(on_schedule)
    say(
        f"growth {size:,}: on schedule ({due_bucket(on_schedule) - first + 1} buckets): found "
        f"{result.on_schedule_found:,} due in {result.on_schedule_s:.2f}s"
    )
    say(f"growth {size:,}: finding the due offers, {result.buckets:,} buckets from the cursor")
    result.find_s, result.found = await find(clock)
    say(f"growth {size:,}: found {result.found:,} due in {result.find_s:.2f}s")

    # The full pass: the sweep finds each due offer and asks for its expiry as offer_service's
    # asking sweep does (a page at a time, published together). Asked twice: by the first
    # pass after a start (nothing read ahead; to a topic nobody reads), and by a pass 30 s
    # after they fell due that follows one 30 s before (which read them ahead, as a sweep
    # every 60 s does), to the running offer_service, which expires them.
    async def ask_at(
        due: DueBuckets, requests: Requests, at: datetime
    ) -> tuple[float, float, list[ExpireOffer]]:
        """Seconds until every due offer was asked for (acknowledged), seconds of the whole
        pass, and the commands."""
        asked: list[ExpireOffer] = []
        seen: set[str] = set()
        all_asked: float | None = None

        async def ask(page: list[Document]) -> int:
            nonlocal all_asked
            commands = [  # as offer_service's build() makes them
                ExpireOffer(
                    command_id=derived_id("expire", offer["_id"], offer["expires_at"].isoformat()),
                    offer_id=offer["_id"],
                )
                for offer in page
                if offer["expires_at"] <= at
            ]
            await requests.send_many(commands)
            asked.extend(c for c in commands if c.command_id not in seen)
            seen.update(c.command_id for c in commands)
            if all_asked is None and len(seen) == result.due:
                all_asked = time.perf_counter() - started
            return 0  # out of its bucket only once its handler has expired it, after this pass

        started = time.perf_counter()
        await due.sweep_pages(at, ask)
        ended = time.perf_counter() - started
        return (ended if all_asked is None else all_asked), ended, asked

    async with asking(f"bench_growth_{tag}_{size}_cold.internal") as requests:
        say(f"growth {size:,}: full pass: the first pass after a start asking for each due offer")
        result.cold_ask_s, result.cold_pass_s, _ = await ask_at(expiry, requests, on_schedule)
        say(
            f"growth {size:,}: first pass: all asked for in {result.cold_ask_s:.2f} s "
            f"(the pass {result.cold_pass_s:.2f} s)"
        )

    ahead = DueBuckets(  # as offer_service's build() makes it
        database["offers"], database["sweeps"], expiry.name, ("expires_at",), SWEEP_INTERVAL
    )
    # offer_service on this database; its own sweep runs once at its start, when the cursor
    # is past the due offers (put there below), then not again within the run.
    await cursor_at(due_bucket(utc_now() - CLOCK_SKEW))
    # Only the due offers expire: OfferExpired of the run's offers are theirs.
    expiries = Watcher(topics.OFFERS_EVENTS, offer_id(tag, 0)[:-1], kind_field="type")
    service = Services(
        f"{tag}x{size}",
        ("offer_service",),
        extra_env={"EXPIRY_SWEEP_INTERVAL_SECONDS": str(HELD_OFF_SWEEP_S)},
        databases={"offer_service": database.name},
    )
    label = f"growth {size:,}: through offer_service"
    async with service as running:
        await cursor_at(first)
        await expiries.start()
        try:
            internal = topics.internal(running.group("offer_service"))
            async with asking(internal) as requests:
                say(
                    f"growth {size:,}: full pass: a pass 30 s before they fall due, one 30 s "
                    f"after, asking the running offer_service ({internal})"
                )
                _, result.ahead_s, early = await ask_at(
                    ahead, requests, due_at - timedelta(seconds=30)
                )
                assert not early, "asked for before they fell due"
                cpu = CpuClock({p.name: p.process.pid for p in running.processes if p.process})
                before = cpu.read()
                started = time.perf_counter()
                result.ask_s, result.ask_pass_s, asked = await ask_at(
                    ahead, requests, due_at + timedelta(seconds=30)
                )
            result.asked = len(asked)
            say(
                f"growth {size:,}: found and asked for {result.asked:,} due among "
                f"{short(size)} pending: {result.ask_s:.2f} s (goal ≤ {ASK_GOAL_S:.0f} s; read "
                f"ahead in {result.ahead_s:.2f} s by the pass before; this pass "
                f"{result.ask_pass_s:.2f} s)"
            )
            last: float | None = None
            with suppress(TimeoutError):
                last = await expiries.wait_for(
                    result.due, kind=EXPIRED, within=expire_within, label=label, since=started
                )
            result.expired = expiries.count(EXPIRED)
            result.expire_cpu = spent_between(before, cpu.read())
            if last is None:
                result.expire_note = (
                    f"{result.expired:,} of {result.due:,} expired within {expire_within:.0f} s"
                )
                result.expire_s = float("nan")
            else:
                result.expire_s = last - started
            handling = await running.handling_ms()
        finally:
            await expiries.stop()
    for (name, type_), (count, ms) in sorted(handling.items()):
        say(f"{label}: {name} handled {count:,} {type_} in {ms:.2f} ms each on average")
        if type_ == "ExpireOffer":
            result.expire_ms = ms
    say(f"{label}: CPU per expiry, ms: " + per_expiry_line(result.expire_cpu, result.expired))
    say(
        f"growth {size:,}: all expired through offer_service: {result.expire_s:.2f} s (goal ≤ "
        f"{EXPIRE_GOAL_S:.0f} s; found and asked for {result.ask_s:.2f} s), "
        f"{result.expired:,}/{result.due:,} OfferExpired"
        + (f" ({result.expire_note})" if result.expire_note else "")
    )

    async def put_back() -> None:
        """The expired offers as they were, pending and due again. One replace per offer:
        FerretDB 1.24.2 holds a PostgreSQL connection for each statement of an update
        command until the command ends (handler/msg_update.go, a defer in the loop), so a
        bulk_write of 50 or more updates takes its whole pool (50) and stalls every client
        of that FerretDB."""
        say(f"growth {size:,}: putting the {result.due:,} expired offers back as they were")
        for i in range(0, size, DUE_EVERY):
            document = copy_of(template, tag, i, base)
            await database["offers"].replace_one({"_id": document["_id"]}, document)

    # By offer_service's own sweep: started with its sweep's cursor past them (its first pass
    # finds nothing), then the cursor put back at their bucket, as after a stop: its next pass
    # finds them all past due and asks its own consumers, which take each offer as the pass
    # read it instead of reading it again (services.runtime.batch, StateCache.see).
    await put_back()
    own = Services(
        f"{tag}o{size}",
        ("offer_service",),
        extra_env={"EXPIRY_SWEEP_INTERVAL_SECONDS": str(int(OWN_SWEEP_INTERVAL.total_seconds()))},
        databases={"offer_service": database.name},
    )
    label = f"growth {size:,}: by offer_service's own sweep"
    asks = Watcher(topics.internal(own.group("offer_service")), offer_id(tag, 0)[:-1], "type")
    expiries = Watcher(topics.OFFERS_EVENTS, offer_id(tag, 0)[:-1], kind_field="type")
    await cursor_at(due_bucket(utc_now() - CLOCK_SKEW))  # its first pass finds nothing
    await asks.start()
    await expiries.start()
    try:
        async with own as running:
            cpu = CpuClock({p.name: p.process.pid for p in running.processes if p.process})
            await cursor_at(first)
            say(f"{label}: its next pass (within {OWN_SWEEP_INTERVAL.seconds} s) catches up")
            with suppress(TimeoutError):
                await asks.wait_for(
                    1,
                    kind="ExpireOffer",
                    within=2 * OWN_SWEEP_INTERVAL.total_seconds(),
                    label=label,
                    since=time.perf_counter(),
                )
            before, commands = cpu.read(), await running.database_commands()
            with suppress(TimeoutError):
                await expiries.wait_for(
                    result.due, kind=EXPIRED, within=expire_within, label=label, since=0.0
                )
            result.own_cpu = spent_between(before, cpu.read())
            result.own_commands = await running.database_commands() - commands
        result.own_expired = expiries.count(EXPIRED)
        ask_times = [t for (_, kind), t in asks.arrived.items() if kind == "ExpireOffer"]
        expiry_times = [t for (_, kind), t in expiries.arrived.items() if kind == EXPIRED]
        if ask_times and expiry_times:
            result.own_ask_s = max(ask_times) - min(ask_times)
            result.own_expire_s = max(expiry_times) - min(ask_times)
    finally:
        await asks.stop()
        await expiries.stop()
    say(
        f"{label}: all asked for {result.own_ask_s:.2f} s and all expired "
        f"{result.own_expire_s:.2f} s after its first ask, "
        f"{result.own_expired:,}/{result.due:,} OfferExpired; CPU per expiry, ms: "
        + per_expiry_line(result.own_cpu, result.own_expired)
    )
    say(
        f"{label}: database commands per expiry: "
        + ", ".join(
            f"{command} {collection} {n / max(1, result.own_expired):.3f}"
            for (_, command, collection), n in sorted(result.own_commands.items())
        )
    )
    # The plain limit, in the same run, on the same offers pending and due again.
    await put_back()
    say(f"growth {size:,}: the plain limit: two update_many of the due bucket, an event each")
    result.plain_s, result.plain_expired, result.plain_cpu = await plain_expiry(
        database,
        first,
        f"bench_growth_{tag}_{size}_plain.internal",  # nobody reads it
    )
    say(
        f"growth {size:,}: the plain limit: all {result.plain_expired:,} expired in "
        f"{result.plain_s:.2f} s (goal ≤ {EXPIRE_GOAL_S:.0f} s); CPU per expiry, ms: "
        + per_expiry_line(result.plain_cpu, result.plain_expired)
    )
    if restore:  # so that the next size has 1 % due again
        await put_back()
    # The cursor past them again, where the next services' start expects it.
    await cursor_at(due_bucket(utc_now() - CLOCK_SKEW))


async def run(
    sizes: list[int],
    extend_n: int,
    extend_within: float,
    keep: bool,
    tag: str | None = None,
    insert_budget_s: float = 2400,
    e2e_up_to: int = 1_000_000,
    settle_s: float = SETTLE_S,
    expire_within: float = 120,
) -> list[SizeFigures]:
    tag = tag or run_id()
    database_name = f"bench_offer_service_{tag}g"
    client = mongo()
    database = client[database_name]
    offers = database["offers"]
    store = OfferStore(
        MongoDocuments(offers),
        MongoDocuments(database["contracts"]),
        MongoDocuments(database["talent_cloud_members"]),
        MongoDocuments(database["time_entries"]),
    )
    # As offer_service's build() makes it: pending offers by the minute they expire in.
    expiry = DueBuckets(offers, database["sweeps"], "offer-expiry", fields=("expires_at",))
    extra_databases = []
    results: list[SizeFigures] = []
    base = datetime.now(UTC)
    say(f"growth: run {tag}, sizes {sizes}, database {database_name}")
    try:
        # As offer_service's prepare() does on start, before the data.
        await store.ensure_indexes()
        await expiry.ensure_ready(utc_now())
        await ensure_outbox_indexes(MongoDocuments(database["rejections"]))
        template = await template_offer(store, tag)
        await offers.delete_one({"_id": template["_id"]})
        have = 0
        for size in sizes:
            rate = await fill(offers, template, tag, have, size, base)
            await settle(settle_s * min(1.0, (size - have) / 900_000))
            have = size
            figures = SizeFigures(size, rate, *await store_timings(store, tag, size))
            results.append(figures)
            figures.plans = {
                "offers.get {_id}": await explain(database, {"_id": offer_id(tag, 0)}),
                "sweep {due_bucket}": await explain(
                    database, {DUE_BUCKET: due_bucket(base - DUE_AGO)}
                ),
                "outbox backlog {outbox_pending}": await explain(database, {PENDING: True}),
            }
            for name, plan in figures.plans.items():
                say(f"growth {size:,}: plan of {name}: {plan}")
            # End to end, with this database as offer_service's.
            notifications_db = f"bench_notification_service_{tag}g{size}"
            extra_databases.append(notifications_db)
            try:
                if size > e2e_up_to:
                    raise RuntimeError(f"not run above {e2e_up_to:,} stored offers (--e2e-up-to)")
                measured = await measure_ours(
                    f"{tag}g{size}",
                    extend_n,
                    within=extend_within,
                    partial=True,
                    label=f"growth {size:,} e2e",
                    databases={
                        "offer_service": database_name,
                        "notification_service": notifications_db,
                    },
                )
                figures.extend_rate = measured.per_second
                if measured.n < extend_n:
                    figures.extend_note = (
                        f"{measured.n} of {extend_n} completed within {extend_within:.0f}s"
                    )
            except (TimeoutError, RuntimeError) as error:
                figures.extend_note = str(error)
                say(f"growth {size:,}: {error}")
            last = size == sizes[-1]
            await sweep(
                expiry,
                database,
                template,
                tag,
                figures,
                base,
                restore=not last,
                expire_within=expire_within,
            )
            if not last:
                following = sizes[sizes.index(size) + 1]
                projected = (following - size) / rate
                if projected > insert_budget_s:
                    note = (
                        f"stopped before {following:,}: inserting {following - size:,} more "
                        f"at {rate:,.0f}/s would take ~{projected / 60:.0f} min"
                    )
                    figures.notes.append(note)
                    say(f"growth: {note}")
                    break
    finally:
        with suppress(Exception):
            await client.close()
        if not keep:
            await drop_databases([database_name, *extra_databases])
    report(results, extend_n, extend_within)
    return results


def report(results: list[SizeFigures], extend_n: int, extend_within: float) -> None:
    if not results:
        return
    first = results[0]

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    def times(value: float | None, reference: float | None) -> str:
        if value is None or not reference:
            return "-"
        ratio = value / reference
        return f"{ratio:.2f}x" + ("" if ratio <= GOAL else " ✘")

    def rate_cost(rate: float | None) -> str:
        # A rate's cost is its inverse: the first size's rate over this one's.
        if rate is None or not rate or first.extend_rate is None:
            return "-"
        return times(first.extend_rate / rate, 1.0)

    print(
        table(
            f"Growth: the cost of one command with offers already stored ({stamp()})",
            (
                "stored offers",
                "insert offers/s",
                "offers.get ms",
                f"x {first.size:,}",
                "commit ms (insert + publish and clear)",
                f"x {first.size:,}",
                f"extend offers/s (e2e, {extend_n} cmds, ≤{extend_within:.0f}s)",
                f"cost x {first.size:,}",
            ),
            [
                (
                    f"{f.size:,}",
                    f"{f.insert_rate:,.0f}",
                    f"{f.get_offer_ms:.2f}",
                    times(f.get_offer_ms, first.get_offer_ms),
                    f"{f.commit_ms:.2f} ({f.insert_ms:.2f} + {f.clear_ms:.2f})",
                    times(f.commit_ms, first.commit_ms),
                    fmt(f.extend_rate, ".1f") + (f" ({f.extend_note})" if f.extend_note else ""),
                    rate_cost(f.extend_rate),
                )
                for f in results
            ],
        )
    )
    print(
        f"  store timings: medians of {SAMPLES} operations each; goal: ≤ {GOAL}x the first size\n"
        "  commit: the unit of work's write of a new offer with its outbox, split at its publish\n"
        "  (recorded, no Kafka): the insert, then the outbox cleared"
    )
    swept = [f for f in results if f.sweep is not None]
    print(
        table(
            "Expiry sweep, 1% of the stored pending offers due",
            (
                "stored offers",
                "due",
                "finding s, on schedule (3 buckets)",
                "buckets read",
                "finding the due offers s",
                "asked for s, first pass after a start (the pass)",
                "read ahead s, the pass before",
                f"found and asked for s (goal ≤ {ASK_GOAL_S:.0f} s) (the pass)",
                f"all expired through offer_service s (goal ≤ {EXPIRE_GOAL_S:.0f} s)",
                "all expired by the plain limit s",
                "OfferExpired",
                "offer_service ms per ExpireOffer",
            ),
            [
                (
                    f"{f.size:,}",
                    f"{s.found:,}/{s.due:,}",
                    f"{s.on_schedule_s:.2f} ({s.on_schedule_found:,} found)",
                    f"{s.buckets:,}",
                    f"{s.find_s:.2f}",
                    f"{s.cold_ask_s:.2f} ({s.cold_pass_s:.2f})",
                    f"{s.ahead_s:.2f}",
                    f"{s.ask_s:.2f} ({s.ask_pass_s:.2f}), {s.asked:,} asked",
                    f"{s.expire_s:.2f}",
                    f"{s.plain_s:.2f}",
                    f"{s.expired:,}/{s.due:,}",
                    fmt(s.expire_ms, ".2f"),
                )
                for f in swept
                if (s := f.sweep) is not None
            ],
        )
    )
    print(
        "  finding: the bucket reads alone, from the sweep's cursor (at the due offers' bucket)\n"
        "  to a clock 2 days ahead; on schedule: the clock a minute after they fell due, as a\n"
        "  sweep every 60 s finds them. asked for: until the sweep (on schedule) had published an\n"
        "  ExpireOffer for each due offer, a page at a time (Kafka, acknowledged); the pass\n"
        "  then reads their bucket to its end. First pass after a start: nothing read ahead.\n"
        "  Found and asked for: the pass 30 s after they fell due, after one 30 s before that\n"
        "  read them ahead (a pass reads what falls due before the next, EXPIRY_SWEEP_INTERVAL\n"
        "  _SECONDS); its asks go to a running offer_service's internal topic, keyed by offer\n"
        "  id. All expired: from that pass's start until offers.events carried every due\n"
        "  offer's OfferExpired (published once the offer is stored expired); ms per\n"
        "  ExpireOffer: offer_service's own mean handling time (/metrics), batched. The plain\n"
        "  limit, on the same offers due again: their ids read, two update_many of their bucket\n"
        "  side by side (half the ids each), then an OfferExpired each published together"
    )
    for f in swept:
        if (s := f.sweep) is not None:
            print(
                f"  found and asked for {s.asked:,} due among {short(f.size)} pending: "
                f"{s.ask_s:.2f} s (goal ≤ {ASK_GOAL_S:.0f} s); with nothing read ahead "
                f"{s.cold_ask_s:.2f} s\n"
                f"  all expired through offer_service: {s.expire_s:.2f} s (goal ≤ "
                f"{EXPIRE_GOAL_S:.0f} s), {s.expired:,}/{s.due:,} OfferExpired"
                + (f" ({s.expire_note})" if s.expire_note else "")
                + f"\n  by offer_service's own sweep (a pass catching up): all "
                f"asked for {s.own_ask_s:.2f} s, all expired {s.own_expire_s:.2f} s after its "
                f"first ask, {s.own_expired:,}/{s.due:,} OfferExpired, "
                f"{ms_per_expiry(sum(s.own_cpu.values()), s.own_expired):.2f} ms of CPU "
                "per expiry\n"
                f"  the plain limit: all {s.plain_expired:,} expired in {s.plain_s:.2f} s, "
                f"{ms_per_expiry(sum(s.plain_cpu.values()), s.plain_expired):.2f} ms of CPU "
                "per expiry"
            )
    measured = [f for f in results if f.extend_rate]
    if len(measured) > 1 and measured[0].extend_rate and measured[-1].extend_rate:
        low, high = measured[0], measured[-1]
        ratio = (high.extend_rate or 0.0) / (low.extend_rate or 1.0)
        print(
            f"  end-to-end extend rate: {high.extend_rate:.1f}/s with {short(high.size)} "
            f"stored, {low.extend_rate:.1f}/s with {short(low.size)}: ratio {ratio:.2f} "
            "(goal: no slowdown)"
        )
    for f in results:
        for name, plan in f.plans.items():
            print(f"  {f.size:,}: plan of {name}: {plan}")
        if f.extend_note:
            print(f"  {f.size:,}: extend: {f.extend_note}")
        for note in f.notes:
            print(f"  {f.size:,}: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--e2e-up-to", type=int, default=1_000_000)
    parser.add_argument("--extend-n", type=int, default=200, help="commands per e2e measurement")
    parser.add_argument(
        "--extend-within", type=float, default=180, help="time limit of each e2e measurement"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE_S,
        help="seconds to wait after the 1M bulk load before timing (scaled down for smaller steps)",
    )
    parser.add_argument(
        "--expire-within",
        type=float,
        default=120,
        help="how long to wait for every due offer's OfferExpired, seconds",
    )
    parser.add_argument(
        "--insert-budget",
        type=float,
        default=2400,
        help="stop before a size whose prefill would take longer than this, seconds",
    )
    add_infra_options(parser)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    run_with_infra(
        args,
        run(
            sizes,
            args.extend_n,
            args.extend_within,
            args.keep,
            insert_budget_s=args.insert_budget,
            settle_s=args.settle,
            e2e_up_to=args.e2e_up_to,
            expire_within=args.expire_within,
        ),
    )


if __name__ == "__main__":
    main()
