"""`python -m bench.analytics --offers 100000`: how long the analytics consumer takes to
catch up on that many offers' events.

The events are made here, the way the services would publish them (whole terms, ids,
times spread over twelve weeks, about one in fifty published twice as an outbox repeat
would), and go straight onto the topics with a batching producer: no service is involved,
so the figure is the consumer's alone. A fresh warehouse starts at the topics' current
ends, so it folds these events and nothing older.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from analytics.consumer import Settings, start_at_the_end
from contracts import topics

Record = tuple[str, str, dict[str, Any]]  # topic, key, event
REPO = Path(__file__).resolve().parent.parent


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _terms(kind: str, amount: float, start: datetime) -> dict[str, Any]:
    terms: dict[str, Any] = {
        "title": "Checkout redesign" if kind == "hourly" else "Logo in three variants",
        "description": "As agreed in chat.",
        "contract_type": kind,
        "currency": "USD",
        "start_date": (start + timedelta(days=5)).date().isoformat(),
        "end_date": (start + timedelta(days=95)).date().isoformat(),
    }
    if kind == "hourly":
        terms.update(hourly_rate=f"{amount:.2f}", weekly_limit_hours=30)
        if int(amount) % 5 == 0:  # a fifth of hourly offers are for a Talent Cloud
            terms["talent_cloud_id"] = "tc-design"
    else:
        half = round(amount / 2, 2)
        terms.update(
            total_amount=f"{amount:.2f}",
            milestones=[
                {"description": "First half", "amount": f"{half:.2f}"},
                {"description": "Second half", "amount": f"{amount - half:.2f}"},
            ],
        )
    return terms


def offer_events(tag: str, index: int, rng: random.Random, now: datetime) -> Iterator[Record]:
    """One offer's life: extended, perhaps talked over and changed, then (usually) ended;
    an accepted one becomes a contract."""
    offer_id, client, freelancer = f"{tag}-o{index}", f"{tag}-c{index % 997}", f"{tag}-f{index}"
    at = now - timedelta(days=rng.uniform(0, 84))
    kind = "hourly" if rng.random() < 0.6 else "fixed"
    amount = rng.uniform(20, 120) if kind == "hourly" else rng.uniform(300, 5_000)

    def event(type_: str, **fields: Any) -> dict[str, Any]:
        return {
            "type": type_,
            "event_id": str(uuid.uuid4()),
            "schema_version": 1,
            "occurred_at": _time(at),
            "causation_id": str(uuid.uuid4()),
            **fields,
        }

    def offer(type_: str, version: int, **fields: Any) -> Record:
        party = {"offer_id": offer_id, "version": version}
        party.update(client_id=client, freelancer_id=freelancer)
        return topics.OFFERS_EVENTS, offer_id, event(type_, **party, **fields)

    version = 1
    terms = _terms(kind, amount, at)
    expiry = {"expires_at": _time(at + timedelta(days=30))}
    yield offer(
        "OfferExtended",
        1,
        job_id=f"{tag}-j{index}",
        proposal_id=f"{tag}-p{index}",
        terms=terms,
        message=None,
        **expiry,
    )
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        at += timedelta(hours=rng.uniform(0.2, 30))
        message = {"offer_id": offer_id, "message_id": str(uuid.uuid4()), "sent_at": _time(at)}
        if rng.random() < 0.3:
            amount *= rng.uniform(1.0, 1.25)
            changes = _terms(kind, amount, at)
            field = "hourly_rate" if kind == "hourly" else "total_amount"
            proposed = {field: changes[field]}
            if kind == "fixed":
                proposed["milestones"] = changes["milestones"]
            yield (
                topics.NEGOTIATIONS_EVENTS,
                offer_id,
                event(
                    "TermsProposed",
                    **message,
                    sender_id=freelancer,
                    changes=proposed,
                    differences=[
                        {"field": field, "current": terms[field], "proposed": proposed[field]}
                    ],
                    text="Could we meet here?",
                ),
            )
            if rng.random() < 0.7:
                at += timedelta(hours=rng.uniform(0.5, 24))
                version += 1
                terms = {**terms, **proposed}
                expiry = {"expires_at": _time(at + timedelta(days=30))}
                yield offer(
                    "OfferChanged",
                    version,
                    terms=terms,
                    message=None,
                    in_response_to=None,
                    **expiry,
                )
        else:
            yield (
                topics.NEGOTIATIONS_EVENTS,
                offer_id,
                event("MessagePosted", **message, sender_id=client, text="Any questions?"),
            )
    at += timedelta(hours=rng.expovariate(1 / 40))
    if at > now:
        return  # still pending
    ending = rng.choices(("accepted", "declined", "withdrawn", "expired"), (55, 20, 10, 15))[0]
    if ending == "accepted":
        yield offer("OfferAccepted", version, terms=terms, accepted_at=_time(at))
        contract_id = f"{tag}-k{index}"
        at += timedelta(seconds=1)
        yield (
            topics.CONTRACTS_EVENTS,
            contract_id,
            event(
                "ContractActivated",
                contract_id=contract_id,
                offer_id=offer_id,
                offer_version=version,
                job_id=f"{tag}-j{index}",
                client_id=client,
                freelancer_id=freelancer,
                terms=terms,
                activated_at=_time(at),
            ),
        )
        if "talent_cloud_id" in terms:
            member = {"freelancer_id": freelancer, "contract_id": contract_id}
            yield (
                topics.TALENT_CLOUDS_EVENTS,
                terms["talent_cloud_id"],
                event("TalentCloudMemberAdded", talent_cloud_id=terms["talent_cloud_id"], **member),
            )
    elif ending == "expired":
        yield offer("OfferExpired", version, reason=None)
    elif ending == "declined":
        yield offer("OfferDeclined", version, proposal_id=f"{tag}-p{index}", reason="Too busy")
    else:
        yield offer("OfferWithdrawn", version, reason=None)
    yield (
        topics.NEGOTIATIONS_EVENTS,
        offer_id,
        event("ThreadClosed", offer_id=offer_id, reason=ending),
    )


def events(tag: str, offers: int, seed: int = 23) -> Iterator[Record]:
    rng, now = random.Random(seed), datetime.now(UTC)
    for index in range(offers):
        for record in offer_events(tag, index, rng, now):
            yield record
            if rng.random() < 0.02:  # an outbox repeat: the same event, same id, again
                yield record


async def publish(bootstrap: str, records: Iterator[Record], *, say: bool = True) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    sent, started, pending = 0, time.monotonic(), []
    try:
        for topic, key, event in records:
            pending.append(await producer.send(topic, json.dumps(event).encode(), key.encode()))
            sent += 1
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
                if say and sent % 50_000 < 5_000:
                    rate = sent / (time.monotonic() - started)
                    print(f"[bench] published {sent:,} events, {rate:,.0f}/s", flush=True)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--offers", type=int, default=100_000)
    parser.add_argument("--database", help="the warehouse (default: a new temporary file)")
    parser.add_argument(
        "--screenshot", type=Path, help="also write the HTML report and a PNG of it here"
    )
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    folder = tempfile.mkdtemp(prefix="analytics-bench-")
    database = args.database or str(Path(folder) / "bench.duckdb")
    tag = f"bench{uuid.uuid4().hex[:6]}"
    asyncio.run(start_at_the_end(Settings(bootstrap, database)))
    print(f"[bench] publishing {args.offers:,} offers' events (ids {tag}-*) to {bootstrap}")
    started = time.monotonic()
    sent = asyncio.run(publish(bootstrap, events(tag, args.offers)))
    print(f"[bench] published {sent:,} events in {time.monotonic() - started:.1f}s")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "ANALYTICS_DB": database}
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "analytics", "--until-caught-up"], env=env, check=True, cwd=REPO
    )
    took = time.monotonic() - started
    print(
        f"[bench] caught up on {args.offers:,} offers ({sent:,} events) in {took:.1f}s: "
        f"{sent / took:,.0f} events/s, warehouse {database}"
    )
    if args.screenshot:
        page = Path(database).with_suffix(".html")
        subprocess.run(
            [sys.executable, "-m", "analytics", "report", "--html", str(page)],
            env=env,
            check=True,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        screenshot(page, args.screenshot)
        print(f"[bench] report {page}, its picture {args.screenshot}")


def screenshot(page: Path, png: Path) -> None:
    """The whole page as Debian's chromium shows it (`make browser` installs it), offline."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        tab = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
        tab.route(
            "**/*",
            lambda route: (
                route.abort() if not route.request.url.startswith("file:") else route.continue_()
            ),
        )
        tab.goto(page.resolve().as_uri())
        tab.wait_for_timeout(1_500)  # plotly draws after load
        tab.screenshot(path=str(png), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
