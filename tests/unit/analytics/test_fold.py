"""The folding of events into the warehouse's rows (analytics.fold): no Kafka, no DuckDB.

The events come from the benchmark's generator (bench.analytics), which is itself held to
the contracts here, so the folds are tried on what the services would publish."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from analytics.fold import (
    RELEASED,
    Event,
    Unreadable,
    fold_contract,
    fold_members,
    fold_offer,
    read_event,
    released_versions,
)
from bench.analytics import Record, offer_events
from contracts import EVENT_ADAPTERS, topics

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def lives(count: int, seed: int = 7) -> Iterator[list[Record]]:
    rng = random.Random(seed)
    for index in range(count):
        yield list(offer_events("unit", index, rng, NOW))


def read(records: list[Record]) -> list[Event]:
    return [read_event(topic, json.dumps(event).encode()) for topic, _, event in records]


def a_life(*, ending: str, changed: bool) -> list[Record]:
    for records in lives(400):
        types = [event["type"] for _, _, event in records]
        if ending in types and ("OfferChanged" in types) == changed:
            return records
    raise AssertionError(f"no generated offer ends with {ending} (changed: {changed})")


def test_the_generated_events_are_valid_events_of_their_topics() -> None:
    for records in lives(200):
        for topic, key, event in records:
            parsed = EVENT_ADAPTERS[topic].validate_python(event)
            assert parsed.key == key


def test_an_offer_folds_into_its_row_and_versions() -> None:
    records = a_life(ending="OfferAccepted", changed=True)
    events = {e["type"]: e for _, _, e in records}
    offer, versions = fold_offer(read(records))

    assert offer is not None
    extended, accepted = events["OfferExtended"], events["OfferAccepted"]
    assert (offer.offer_id, offer.client_id, offer.job_id) == (
        extended["offer_id"],
        extended["client_id"],
        extended["job_id"],
    )
    assert offer.status == "accepted" and offer.versions == len(versions) >= 2
    assert [v.version for v in versions] == list(range(1, offer.versions + 1))
    assert versions[0].terms == extended["terms"]
    assert versions[-1].terms == accepted["terms"]
    field = "hourly_rate" if offer.contract_type == "hourly" else "total_amount"
    assert offer.first_amount == Decimal(extended["terms"][field])
    assert offer.last_amount == Decimal(accepted["terms"][field])
    assert offer.amount_change == pytest.approx(float(offer.last_amount / offer.first_amount - 1))
    assert offer.ended_at == datetime.fromisoformat(accepted["accepted_at"]).replace(tzinfo=None)
    kinds = [e["type"] for _, _, e in records]
    assert offer.messages == kinds.count("MessagePosted")
    assert offer.proposals == kinds.count("TermsProposed") >= 1


@pytest.mark.parametrize(
    ("ending", "status"),
    [("OfferDeclined", "declined"), ("OfferWithdrawn", "withdrawn"), ("OfferExpired", "expired")],
)
def test_each_ending_gives_its_status(ending: str, status: str) -> None:
    offer, _ = fold_offer(read(a_life(ending=ending, changed=False)))
    assert offer is not None and offer.status == status and offer.ended_at is not None
    assert offer.amount_change in (0.0, None)


def test_an_offer_without_an_ending_is_pending() -> None:
    records = [
        r for r in a_life(ending="OfferExpired", changed=False) if r[0] == topics.OFFERS_EVENTS
    ]
    offer, _ = fold_offer(read(records[:1]))
    assert offer is not None and offer.status == "pending" and offer.ended_at is None


def test_any_order_and_any_repeats_fold_into_the_same_rows() -> None:
    rng = random.Random(3)
    for records in lives(60):
        events = read(records)
        expected = fold_offer(events)
        shuffled = events + rng.sample(events, k=len(events) // 2)
        rng.shuffle(shuffled)
        assert fold_offer(shuffled) == expected


def test_messages_before_their_offer_give_no_row_until_it_comes() -> None:
    records = a_life(ending="OfferAccepted", changed=True)
    events = read(records)
    thread = [e for e in events if e.type in ("MessagePosted", "TermsProposed")]
    offer, versions = fold_offer(thread)
    assert offer is None and versions == []
    offer, _ = fold_offer(thread + events)
    assert offer is not None and offer.proposals >= 1


def test_a_contract_and_its_members_fold_from_their_topics() -> None:
    records = a_life(ending="OfferAccepted", changed=False)
    [activated] = [e for t, _, e in records if t == topics.CONTRACTS_EVENTS]
    logged = {
        "type": "TimeLogged",
        "event_id": "e-time-1",
        "schema_version": 1,
        "occurred_at": "2026-12-05T10:00:00Z",
        "causation_id": "c-1",
        "contract_id": activated["contract_id"],
        "entry_id": "entry-1",
        "work_date": "2026-12-05",
        "hours": "7.50",
    }
    raw = [json.dumps(activated).encode(), json.dumps(logged).encode()] * 2
    contract = fold_contract([read_event(topics.CONTRACTS_EVENTS, value) for value in raw])
    assert contract is not None
    assert contract.offer_id == activated["offer_id"]
    assert (contract.time_entries, contract.hours_logged) == (1, Decimal("7.50"))
    assert fold_contract([read_event(topics.CONTRACTS_EVENTS, raw[1])]) is None

    added = {
        "type": "TalentCloudMemberAdded",
        "event_id": "e-tc-1",
        "schema_version": 1,
        "occurred_at": "2026-12-05T10:00:00Z",
        "causation_id": "c-2",
        "talent_cloud_id": "tc-design",
        "freelancer_id": "f-1",
        "contract_id": activated["contract_id"],
    }
    again = {**added, "event_id": "e-tc-2", "contract_id": "another"}
    members = fold_members(
        [read_event(topics.TALENT_CLOUDS_EVENTS, json.dumps(e).encode()) for e in (again, added)]
    )
    assert [(m.freelancer_id, m.contract_id) for m in members] == [
        ("f-1", activated["contract_id"])
    ]


def test_events_are_read_by_schema_version_as_the_released_schemas_allow() -> None:
    assert RELEASED["OfferExtended"] == frozenset({1})
    records = a_life(ending="OfferAccepted", changed=False)
    events = read(records)
    newer = [replace(e, schema_version=2) if e.type == "OfferAccepted" else e for e in events]
    offer, _ = fold_offer(newer)
    # A version this consumer does not know is not guessed at: the offer stays as it was.
    assert offer is not None and offer.status == "pending"
    # An unknown extra field, and a missing optional one, are no obstacle.
    topic, _, extended = records[0]
    tolerant = {**extended, "channel": "mobile"}
    del tolerant["message"]
    assert fold_offer([read_event(topic, json.dumps(tolerant).encode())])[0] is not None


def test_released_versions_come_from_the_file_names(tmp_path: Any) -> None:
    for name in ("OfferExtended.v1.json", "OfferExtended.v2.json", "TimeLogged.v1.json"):
        (tmp_path / name).write_text("{}")
    assert released_versions(tmp_path) == {
        "OfferExtended": frozenset({1, 2}),
        "TimeLogged": frozenset({1}),
    }


@pytest.mark.parametrize(
    "value",
    [b"not json", b"[1, 2]", b'{"type": "OfferExtended"}', None],
)
def test_what_is_no_event_is_unreadable(value: bytes | None) -> None:
    with pytest.raises(Unreadable):
        read_event(topics.OFFERS_EVENTS, value)
