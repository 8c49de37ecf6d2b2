"""Growth: how the extend rate and the expiry sweep behave with many offers stored.

The offers are inserted straight into a database of offer_service's (insert_many batches)
in exactly the shape offer_service's store leaves an offer after its events are published:
the template is one offer written through the real path (parse_command → domain.extend →
MongoOfferStore.create_offer → MongoOutbox.mark_published) and read back; copies differ in
ids, parties and times. One offer in 100 expires 1 day from now, the rest in 30 days; the
sweep is timed with a clock 2 days ahead, so exactly those 1% are due for it and never for
the running offer_service (whose own sweep uses the real clock).

At each size (default 10k, then topped up to 100k, then to 1M):
- direct store timings: one get_offer, one create_offer + mark_published of a new offer;
- the end-to-end extend rate with offer_service and notification_service as processes
  (N commands, capped by a time limit: the rate is what completed within it);
- the sweep: the query plan FerretDB reports, the time of the due-offers query alone, and
  handlers.sweep_expired timed as offer_service runs it, limited to a few expiries at the
  larger sizes (each expiry is timed; the full pass is extrapolated and labelled so).

    python -m bench.growth [--sizes 10000,100000,1000000] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import ASCENDING

from contracts import OFFER_COMMAND_ADAPTER, ExtendOffer, parse_command
from services.offer_service.domain import offer as offer_rules
from services.offer_service.domain.offer import Policy
from services.offer_service.handlers import OfferHandlers, offer_entries
from services.offer_service.store import MongoOfferStore
from services.runtime.kafka import ensure_topics
from services.runtime.outbox import MongoOutbox, OutboxEntry
from services.runtime.ownership import Ownership
from services.runtime.refusals import Refusals, Rejection

from .common import (
    INFRA,
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
from .throughput import measure_ours

Document = dict[str, Any]
BATCH = 2000
DUE_EVERY = 100  # one offer in 100 is due for the sweep


@dataclass
class SizeFigures:
    size: int
    insert_rate: float
    get_offer_ms: float
    create_ms: float
    mark_published_ms: float
    extend_rate: float | None = None
    extend_note: str = ""
    sweep_query_s: float | None = None
    sweep_due: int = 0
    sweep_expired: int = 0
    sweep_pass_s: float | None = None
    expire_ms: float | None = None
    plan: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def sweep_full_s(self) -> float | None:
        if self.sweep_query_s is None or self.expire_ms is None:
            return None
        return self.sweep_query_s + self.sweep_due * self.expire_ms / 1000


def expiries_for(size: int) -> int:
    """How many offers the timed sweep pass expires: every due one would take hours at the
    larger sizes (each expiry's writes scan the collection on FerretDB/SQLite)."""
    return 10 if size <= 10_000 else 2 if size <= 100_000 else 0


class LimitedOwnership(Ownership):
    """Owns every offer, but lets the sweep expire only the first `limit` it asks about."""

    def __init__(self, limit: int) -> None:
        super().__init__("offers.commands")
        self.partitions = 3
        self._owned = frozenset({0, 1, 2})
        self.limit = limit
        self.asked = 0

    def owns(self, key: str) -> bool:
        self.asked += 1
        return self.asked <= self.limit


async def template_offer(store: MongoOfferStore, tag: str) -> Document:
    """One offer through the real path, as the store leaves it once published."""
    raw = json.dumps(extend_offer(f"{tag}-template", 0, hourly_terms())).encode()
    command = parse_command(OFFER_COMMAND_ADAPTER, raw, today=today(), max_contract_days=180)
    assert isinstance(command, ExtendOffer), command
    now = datetime.now(UTC)
    decision = offer_rules.extend(command, now=now, policy=Policy())
    assert not isinstance(decision, Rejection)
    document = await store.create_offer(
        decision.offer, command.command_id, offer_entries(decision), now
    )
    await store.offers_outbox.mark_published(document["_id"], document["revision"])
    stored = await store.offers.find_one({"_id": document["_id"]})
    assert stored is not None
    return stored


def copies(template: Document, tag: str, start: int, stop: int, now: datetime) -> list[Document]:
    out = []
    soon, later = now + timedelta(days=1), now + timedelta(days=30)
    version = dict(template["versions"][0], sent_at=now)
    for i in range(start, stop):
        offer_id = f"growth-{tag}-{i}"
        out.append(
            {
                **template,
                "_id": offer_id,
                "offer_id": offer_id,
                "job_id": f"growth-job-{i}",
                "proposal_id": f"growth-prop-{i}",
                "client_id": f"growth-client-{i % 5000}",
                "freelancer_id": f"growth-free-{i % 20000}",
                "expires_at": soon if i % DUE_EVERY == 0 else later,
                "versions": [version],
                "created_at": now,
                "updated_at": now,
                "handled": [str(uuid.uuid4())],
            }
        )
    return out


async def fill(store: MongoOfferStore, template: Document, tag: str, have: int, want: int) -> float:
    """Inserts offers up to `want`; returns the insert rate (offers/s)."""
    started = time.perf_counter()
    next_line = started + 10
    now = datetime.now(UTC)
    for start in range(have, want, BATCH):
        await store.offers.insert_many(copies(template, tag, start, min(want, start + BATCH), now))
        if time.perf_counter() >= next_line:
            done = min(want, start + BATCH)
            rate = (done - have) / (time.perf_counter() - started)
            eta = (want - done) / rate
            say(f"growth: {done:,}/{want:,} offers stored ({rate:,.0f}/s, ~{eta:.0f}s to go)")
            next_line += 10
    rate = (want - have) / (time.perf_counter() - started)
    say(f"growth: {want:,} offers stored (this step {rate:,.0f} offers/s)")
    return rate


async def store_timings(store: MongoOfferStore, tag: str, size: int) -> tuple[float, float, float]:
    """One get_offer of an existing offer; create_offer + mark_published of a new one."""
    started = time.perf_counter()
    await store.get_offer(f"growth-{tag}-{size // 2}")
    get_ms = 1000 * (time.perf_counter() - started)
    raw = json.dumps(extend_offer(f"{tag}-probe{size}", 0, hourly_terms())).encode()
    command = parse_command(OFFER_COMMAND_ADAPTER, raw, today=today(), max_contract_days=180)
    assert isinstance(command, ExtendOffer)
    now = datetime.now(UTC)
    decision = offer_rules.extend(command, now=now, policy=Policy())
    assert not isinstance(decision, Rejection)
    started = time.perf_counter()
    document = await store.create_offer(
        decision.offer, command.command_id, offer_entries(decision), now
    )
    create_ms = 1000 * (time.perf_counter() - started)
    started = time.perf_counter()
    await store.offers_outbox.mark_published(document["_id"], document["revision"])
    mark_ms = 1000 * (time.perf_counter() - started)
    say(
        f"growth {size:,}: get_offer {get_ms:.1f} ms, create_offer {create_ms:.1f} ms, "
        f"mark_published {mark_ms:.0f} ms"
    )
    return get_ms, create_ms, mark_ms


async def sweep(store: MongoOfferStore, database: Any, tag: str, figures: SizeFigures) -> None:
    clock_ahead = datetime.now(UTC) + timedelta(days=2)
    query = {"status": "pending", "expires_at": {"$lte": clock_ahead}}
    explained = await database.command(
        {"explain": {"find": "offers", "filter": query, "sort": {"expires_at": ASCENDING}}}
    )
    plan = explained.get("queryPlanner", {}).get("Plan") or explained.get("queryPlanner")
    figures.plan = (
        f"filterPushdown={explained.get('filterPushdown')}, "
        f"sortPushdown={explained.get('sortPushdown')}, plan={plan}"
    )
    say(f"growth {figures.size:,}: sweep query plan: {figures.plan}")
    started = time.perf_counter()
    due = [offer_id async for offer_id in store.offers_due_for_expiry(clock_ahead)]
    figures.sweep_query_s = time.perf_counter() - started
    figures.sweep_due = len(due)
    say(
        f"growth {figures.size:,}: due-offers query alone {figures.sweep_query_s:.1f}s "
        f"({len(due):,} due)"
    )

    limit = min(len(due), expiries_for(figures.size))
    if limit == 0:
        # Each expiry is a get_offer and two revision-conditioned writes of the offer
        # (update_offer, mark_published): estimated from the store timings of this size.
        figures.expire_ms = figures.get_offer_ms + 2 * figures.mark_published_ms
        figures.notes.append(
            "sweep pass not run at this size; ms per expiry estimated as get_offer + "
            "2 x mark_published (both writes are conditioned on _id and revision)"
        )
        say(f"growth {figures.size:,}: sweep pass skipped, ~{figures.expire_ms:,.0f} ms/expiry")
        return
    topic = f"bench.{tag}.offers-events"
    await ensure_topics(INFRA.kafka, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=INFRA.kafka, enable_idempotence=True)
    await producer.start()
    published = 0

    async def publish(entries: Sequence[OutboxEntry]) -> None:
        nonlocal published
        futures = [
            await producer.send(topic, e.payload.encode(), key=e.key.encode()) for e in entries
        ]
        await asyncio.gather(*futures)
        published += len(futures)

    ownership = LimitedOwnership(limit)
    handlers = OfferHandlers(
        store,
        publish,
        policy=Policy(),
        clock=lambda: datetime.now(UTC) + timedelta(days=2),
        unknown_contract_wait=0,
        offers=ownership,
        contracts=Ownership("contracts.commands"),
        refusals=Refusals(database, publish, lambda: datetime.now(UTC)),
    )
    say(f"growth {figures.size:,}: sweep pass, expiring at most {limit} of {len(due):,} due")
    try:
        # Each expiry timed on its own (the pass also streams the whole due query).
        expire = handlers._expire
        expiry_seconds: list[float] = []

        async def timed_expire(offer_id: str, sweep_id: str) -> bool:
            began = time.perf_counter()
            try:
                return await expire(offer_id, sweep_id)
            finally:
                expiry_seconds.append(time.perf_counter() - began)

        setattr(handlers, "_expire", timed_expire)  # noqa: B010
        started = time.perf_counter()
        expired = await handlers.sweep_expired()
        figures.sweep_pass_s = time.perf_counter() - started
    finally:
        await producer.stop()
    figures.sweep_expired = expired
    if expiry_seconds:
        figures.expire_ms = 1000 * sum(expiry_seconds) / len(expiry_seconds)
    say(
        f"growth {figures.size:,}: sweep pass {figures.sweep_pass_s:.1f}s, expired {expired} "
        f"({published} events published), ~{figures.expire_ms or 0:.0f} ms per expiry"
    )


async def run(
    sizes: list[int],
    extend_n: int,
    extend_within: float,
    keep: bool,
    tag: str | None = None,
    insert_budget_s: float = 1200,
    e2e_up_to: int = 100_000,
) -> list[SizeFigures]:
    tag = tag or run_id()
    database_name = f"bench_offer_service_{tag}g"
    client = mongo()
    database = client[database_name]
    store = MongoOfferStore(database)
    extra_databases = []
    results: list[SizeFigures] = []
    say(f"growth: run {tag}, sizes {sizes}, database {database_name}")
    try:
        await store.ensure_indexes()  # as offer_service does on start, before the data
        await MongoOutbox(database["rejections"]).ensure_indexes()
        template = await template_offer(store, tag)
        await store.offers.delete_one({"_id": template["_id"]})
        have = 0
        for size in sizes:
            rate = await fill(store, template, tag, have, size)
            have = size
            figures = SizeFigures(size, rate, *await store_timings(store, tag, size))
            results.append(figures)
            # End to end, with this database as offer_service's.
            notifications_db = f"bench_notification_service_{tag}g{size}"
            extra_databases.append(notifications_db)
            try:
                if size > e2e_up_to:
                    raise RuntimeError(f"not run above {e2e_up_to:,} stored offers (--e2e-up-to)")
                measured = await measure_ours(
                    f"{tag}g{size}",
                    extend_n,
                    "after",
                    within=extend_within,
                    partial=True,
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
            await sweep(store, database, f"{tag}g{size}", figures)
            if size != sizes[-1]:
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
        await client.close()
        if not keep:
            await drop_databases([database_name, *extra_databases])
    report(results, extend_n, extend_within)
    return results


def report(results: list[SizeFigures], extend_n: int, extend_within: float) -> None:
    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    print(
        table(
            f"Growth: offers already stored in offer_service's database ({stamp()})",
            (
                "stored offers",
                "insert offers/s",
                "get_offer ms",
                "create_offer ms",
                "mark_published ms",
                f"extend offers/s (e2e, {extend_n} cmds, ≤{extend_within:.0f}s)",
            ),
            [
                (
                    f"{f.size:,}",
                    f"{f.insert_rate:,.0f}",
                    f"{f.get_offer_ms:.1f}",
                    f"{f.create_ms:.1f}",
                    f"{f.mark_published_ms:,.0f}",
                    fmt(f.extend_rate, ".2f") + (f" ({f.extend_note})" if f.extend_note else ""),
                )
                for f in results
            ],
        )
    )
    print(
        table(
            "Expiry sweep, 1% of the stored pending offers due",
            (
                "stored offers",
                "due",
                "query alone s",
                "expired in pass",
                "pass s",
                "ms per expiry",
                "full pass s (extrapolated)",
            ),
            [
                (
                    f"{f.size:,}",
                    f"{f.sweep_due:,}",
                    fmt(f.sweep_query_s, ".1f"),
                    f"{f.sweep_expired}",
                    fmt(f.sweep_pass_s, ".1f"),
                    fmt(f.expire_ms, ",.0f"),
                    fmt(f.sweep_full_s, ",.0f")
                    + (" (measured)" if f.sweep_expired >= f.sweep_due else " (estimate)"),
                )
                for f in results
            ],
        )
    )
    for f in results:
        print(f"  {f.size:,}: sweep query plan: {f.plan}")
        if f.extend_note:
            print(f"  {f.size:,}: extend: {f.extend_note}")
        for note in f.notes:
            print(f"  {f.size:,}: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--e2e-up-to", type=int, default=100_000)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--extend-n", type=int, default=200, help="commands per e2e measurement")
    parser.add_argument(
        "--extend-within", type=float, default=180, help="time limit of each e2e measurement"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the bench databases (and its own infra)"
    )
    add_infra_options(parser)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    run_with_infra(
        args,
        run(sizes, args.extend_n, args.extend_within, args.keep, e2e_up_to=args.e2e_up_to),
    )


if __name__ == "__main__":
    main()
