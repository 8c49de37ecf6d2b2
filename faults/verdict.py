"""The one verdict every fault ends with: nothing lost, nothing doubled.

Judged from two sides: what went over the wire (every output topic, recorded from the
start of the run) and what the three services stored (their MongoDB databases), both
narrowed to what this run sent (its ledger), so other traffic on the shared topics and
other runs' documents do not count.

Checks (each offender is either still MISSING, which may yet arrive, or WRONG, final):
  events          one event_id never stands for two different contents; no change is
                  published under two event_ids (one event per (offer, type, version), per
                  message, per contract, per notification, per rejection)
  commands        every command of the run has exactly one outcome (its event or its
                  CommandRejected), the one expected
  offers          every offer ends as its story says, with at most one terminal event, and
                  the stored offer agrees with the events
  races           of each accept/withdraw pair exactly one won, the other was refused
  contracts       every accepted offer has exactly one stored contract and one
                  ContractActivated; no other offer has any; one Talent Cloud membership
                  per accepted offer that names a cloud
  messages        every posted message is stored once and published once (MessagePosted /
                  TermsProposed once per message_id), and nothing is stored unpublished
  notifications   every event that notifies has exactly one NotificationCreated and one
                  stored notification per (source event, recipient), of the right kind;
                  no notification without a source
  malformed       every malformed record dead-lettered (bytes unchanged) or refused,
                  exactly once, never both
  outboxes        nothing of the run is left unpublished in a service's outbox: every
                  message an outbox holds is on the wire (a batch leaves what it published
                  in its outboxes, marked by the record that wrote them, instead of writing
                  every document again to empty them: services.runtime.outbox)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient

from contracts import topics

from .traffic import Ledger
from .wire import Record, Recorder

SHOW = 5  # offenders shown per check

OUTCOME_TOPICS = (topics.OFFERS_EVENTS, topics.NEGOTIATIONS_EVENTS, topics.CONTRACTS_EVENTS)
TERMINAL = {
    "OfferAccepted": "accepted",
    "OfferWithdrawn": "withdrawn",
    "OfferDeclined": "declined",
    "OfferExpired": "expired",
}


@dataclass
class Check:
    name: str
    total: int = 0  # how many things were checked
    note: str = ""  # what was found, when it says more than the count
    missing: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.missing and not self.wrong

    def line(self) -> str:
        counted = f"{self.total:,} checked" + (f"; {self.note}" if self.note else "")
        if self.passed:
            return f"  PASS  {self.name} ({counted})"
        parts = []
        if self.wrong:
            parts.append(f"{len(self.wrong):,} wrong, e.g. " + "; ".join(self.wrong[:SHOW]))
        if self.missing:
            parts.append(f"{len(self.missing):,} missing, e.g. " + "; ".join(self.missing[:SHOW]))
        return f"  FAIL  {self.name} ({counted}): " + " | ".join(parts)


@dataclass
class Verdict:
    name: str
    checks: list[Check]
    summary: str = ""

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def missing(self) -> bool:
        return any(check.missing for check in self.checks)

    @property
    def wrong(self) -> bool:
        return any(check.wrong for check in self.checks)

    def report(self) -> str:
        head = f"{'PASS' if self.passed else 'FAIL'}  {self.name}"
        if self.summary:
            head += f" — {self.summary}"
        return "\n".join([head, *(check.line() for check in self.checks)])


# --- the stored side -------------------------------------------------------------------------


@dataclass
class Stored:
    services: set[str]  # whose databases were read
    offers: dict[str, dict[str, Any]]
    contracts: list[dict[str, Any]]
    members: list[dict[str, Any]]
    rejections: dict[str, dict[str, Any]]
    messages: list[dict[str, Any]]
    notifications: list[dict[str, Any]]


class Databases:
    """The three services' databases (names by service)."""

    def __init__(self, mongodb_url: str, names: dict[str, str]) -> None:
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongodb_url, tz_aware=True, serverSelectionTimeoutMS=10_000
        )
        self._names = names

    async def close(self) -> None:
        await self._client.close()

    async def outboxes(self, service: str) -> list[tuple[str, Any, list[dict[str, Any]]]]:
        """Every document of a service's database whose outbox holds messages, as
        (collection, _id, outbox): what the service stored to publish, and either has
        published (a batch marks it so, it does not empty it) or has not yet."""
        database = self._client[self._names[service]]
        return [
            (name, document["_id"], list(document["outbox"]))
            for name in sorted(await database.list_collection_names())
            async for document in database[name].find({}, {"outbox": 1})
            if document.get("outbox")
        ]

    async def read(self) -> Stored:
        async def all_of(service: str, name: str, *fields: str) -> list[dict[str, Any]]:
            if service not in self._names:
                return []
            collection = self._client[self._names[service]][name]
            projection = dict.fromkeys(["outbox", *fields], 1)
            return [document async for document in collection.find({}, projection)]

        offers = await all_of("offer_service", "offers", "status", "version")
        return Stored(
            services=set(self._names),
            offers={d["_id"]: d for d in offers},
            contracts=await all_of("offer_service", "contracts", "offer_id", "offer_version"),
            members=await all_of(
                "offer_service", "talent_cloud_members", "talent_cloud_id", "freelancer_id"
            ),
            rejections={
                d["_id"]: d
                for service in ("offer_service", "messaging_service", "notification_service")
                for d in await all_of(service, "rejections")
            },
            messages=await all_of("messaging_service", "messages", "offer_id", "message_id"),
            notifications=await all_of(
                "notification_service",
                "notifications",
                "recipient_id",
                "source_event_id",
                "kind",
            ),
        )


# --- the wire side ---------------------------------------------------------------------------


@dataclass
class Wire:
    """The run's records, by what they are about."""

    events: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    by_offer: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    rejections: list[Record] = field(default_factory=list)
    dead_letters: dict[tuple[str, int, int], list[Record]] = field(
        default_factory=lambda: defaultdict(list)
    )
    members: list[Record] = field(default_factory=list)
    notifications: list[Record] = field(default_factory=list)


def scope(ledger: Ledger, records: Iterable[Record]) -> Wire:
    offers, people = ledger.offers, ledger.people
    command_ids = set(ledger.commands) | {m.command_id for m in ledger.malformed if m.command_id}
    record_ids = {m.record_id for m in ledger.malformed if m.position is not None}
    positions = {
        (m.position.topic, m.position.partition, m.position.offset)
        for m in ledger.malformed
        if m.position is not None
    }
    wire = Wire()
    for record in records:
        value = record.value
        if record.topic == topics.COMMANDS_DEAD_LETTER:
            h = record.headers
            try:
                where = (h["source_topic"], int(h["source_partition"]), int(h["source_offset"]))
            except (KeyError, ValueError):
                continue
            if where in positions:
                wire.dead_letters[where].append(record)
            continue
        if not isinstance(value, dict):
            continue
        type_ = value.get("type")
        # Another run's records (the topics are shared) are left out, from `events` too.
        if record.topic == topics.COMMANDS_REJECTED:
            if value.get("command_id") not in command_ids and (
                value.get("causation_id") not in record_ids
            ):
                continue
            wire.rejections.append(record)
        elif record.topic == topics.TALENT_CLOUDS_EVENTS:
            if not ledger.ours(value.get("talent_cloud_id")):
                continue
            wire.members.append(record)
        elif record.topic == topics.NOTIFICATIONS_EVENTS:
            if value.get("recipient_id") not in people:
                continue
            wire.notifications.append(record)
        elif value.get("offer_id") in offers and type_ != "TimeLogged":
            wire.by_offer[value["offer_id"]].append(record)
        else:
            continue
        if "event_id" in value:
            wire.events[value["event_id"]].append(record)
    return wire


def distinct(records: Iterable[Record]) -> dict[str, Record]:
    """One record per event_id (repeats on the wire are the same event)."""
    return {r.value["event_id"]: r for r in records}


# --- the checks ------------------------------------------------------------------------------


def check_events(wire: Wire) -> Check:
    check = Check("events: one content per event_id, one event_id per change")
    check.total = len(wire.events)
    for event_id, copies in wire.events.items():
        if len({json.dumps(c.value, sort_keys=True) for c in copies}) > 1:
            check.wrong.append(f"{event_id} published with {len(copies)} different contents")
    changes: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for offer_id, records in wire.by_offer.items():
        for r in records:
            v = r.value
            identity: tuple[Any, ...] = (v.get("version"), v.get("message_id"))
            if v["type"] == "ContractActivated" or v["type"] in TERMINAL:
                identity = ()  # once per offer, whatever the version
            changes[(offer_id, v["type"], *identity)].add(v["event_id"])
    for r in wire.members:
        changes[("member", r.value["talent_cloud_id"], r.value["freelancer_id"])].add(
            r.value["event_id"]
        )
    for r in wire.notifications:
        v = r.value
        changes[("notification", v["notification_id"])].add(v["event_id"])
        changes[("notified", v["source_event_id"], v["recipient_id"])].add(v["notification_id"])
    for r in wire.rejections:
        v = r.value
        changes[("rejection", v.get("command_id") or v.get("causation_id"))].add(v["event_id"])
    for what, ids in changes.items():
        if len(ids) > 1:
            check.wrong.append(f"{'/'.join(map(str, what))} published as {len(ids)} events")
    return check


def check_commands(ledger: Ledger, wire: Wire) -> Check:
    check = Check("commands: exactly one outcome each, the expected one")
    outcomes: dict[str, dict[str, Record]] = defaultdict(dict)
    for records in wire.by_offer.values():
        for r in records:
            if r.topic in OUTCOME_TOPICS and r.value.get("causation_id") in ledger.commands:
                outcomes[r.value["causation_id"]][r.value["event_id"]] = r
    for r in wire.rejections:
        command_id = r.value.get("command_id")
        if command_id in ledger.commands:
            outcomes[command_id][r.value["event_id"]] = r
    check.total = len(ledger.commands)
    for command_id, expected in ledger.commands.items():
        found = outcomes.get(command_id, {})
        what = f"{expected.type} {command_id} ({expected.key})"
        if not found:
            check.missing.append(f"{what}: no outcome")
            continue
        if len(found) > 1:
            kinds = sorted(r.value["type"] for r in found.values())
            check.wrong.append(f"{what}: {len(found)} outcomes {kinds}")
            continue
        [outcome] = found.values()
        rejected = outcome.value["type"] == "CommandRejected"
        if expected.outcome == "ok" and rejected:
            check.wrong.append(f"{what}: refused {outcome.value.get('code')}, expected to pass")
        elif expected.outcome == "rejected" and not rejected:
            check.wrong.append(f"{what}: passed ({outcome.value['type']}), expected refusal")
        elif rejected and expected.code and outcome.value.get("code") != expected.code:
            check.wrong.append(
                f"{what}: refused {outcome.value.get('code')}, expected {expected.code}"
            )
    return check


def check_offers(ledger: Ledger, wire: Wire, stored: Stored) -> Check:
    check = Check("offers: each ends as its story says, stored as published")
    check.total = len(ledger.final_status)
    for offer_id, expected in ledger.final_status.items():
        records = distinct(wire.by_offer.get(offer_id, ()))
        ends = [r.value["type"] for r in records.values() if r.value["type"] in TERMINAL]
        document = stored.offers.get(offer_id)
        status = None if document is None else document["status"]
        if len(ends) > 1:
            check.wrong.append(f"{offer_id}: {len(ends)} terminal events {sorted(ends)}")
            continue
        published = TERMINAL[ends[0]] if ends else "pending"
        if document is None or (expected != "pending" and not ends):
            check.missing.append(f"{offer_id}: stored {status}, published {published}")
        elif status != published:
            check.wrong.append(f"{offer_id}: stored {status}, published {published}")
        elif expected is not None and status != expected:
            check.wrong.append(f"{offer_id}: {status}, expected {expected}")
    return check


def check_races(ledger: Ledger, wire: Wire) -> Check:
    check = Check("races: exactly one of accept/withdraw wins, the other is refused")
    check.total = len(ledger.races)
    won: dict[str, int] = defaultdict(int)
    for offer_id, (accept, withdraw) in ledger.races.items():
        records = distinct(wire.by_offer.get(offer_id, ()))
        wins = {r.value["type"] for r in records.values() if r.value["type"] in TERMINAL}
        refused = {
            r.value.get("command_id")
            for r in distinct(wire.rejections).values()
            if r.value.get("command_id") in (accept, withdraw)
        }
        if len(wins) > 1 or len(refused) > 1:
            check.wrong.append(f"{offer_id}: won {sorted(wins)}, refused {len(refused)}")
        elif not wins or not refused:
            check.missing.append(f"{offer_id}: won {sorted(wins)}, refused {len(refused)}")
        elif ("OfferAccepted" in wins) != (withdraw in refused):
            check.wrong.append(f"{offer_id}: won {sorted(wins)} but the winner was refused")
        else:
            won[TERMINAL[wins.pop()]] += 1
    check.note = ", ".join(f"{n:,} {status}" for status, n in sorted(won.items()))
    return check


def check_contracts(ledger: Ledger, wire: Wire, stored: Stored) -> Check:
    check = Check("contracts: one per accepted offer, none otherwise")
    contracts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for document in stored.contracts:
        contracts[document["offer_id"]].append(document)
    members: dict[str, int] = defaultdict(int)
    for document in stored.members:
        if ledger.ours(document.get("talent_cloud_id")):
            members[document["freelancer_id"]] += 1
    published_members: dict[str, set[str]] = defaultdict(set)
    for r in wire.members:
        published_members[r.value["freelancer_id"]].add(r.value["event_id"])
    check.total = len(ledger.offers)
    for offer_id, parties in ledger.offers.items():
        records = distinct(wire.by_offer.get(offer_id, ())).values()
        accepted = [r.value for r in records if r.value["type"] == "OfferAccepted"]
        activated = [r.value for r in records if r.value["type"] == "ContractActivated"]
        mine = contracts.get(offer_id, [])
        if not accepted:
            if mine or activated:
                check.wrong.append(
                    f"{offer_id}: not accepted, {len(mine)} contracts, {len(activated)} "
                    "ContractActivated"
                )
            continue
        if len(mine) > 1 or len(activated) > 1:
            check.wrong.append(
                f"{offer_id}: {len(mine)} contracts, {len(activated)} ContractActivated"
            )
        elif not mine or not activated:
            check.missing.append(
                f"{offer_id}: {len(mine)} contracts, {len(activated)} ContractActivated"
            )
        elif mine[0]["offer_version"] != accepted[0]["version"]:
            check.wrong.append(f"{offer_id}: contract of version {mine[0]['offer_version']}")
        if ledger.ours(accepted[0]["terms"].get("talent_cloud_id")):
            n_stored = members.get(parties.freelancer_id, 0)
            n_published = len(published_members.get(parties.freelancer_id, ()))
            if n_stored > 1 or n_published > 1:
                check.wrong.append(f"{offer_id}: {n_stored} memberships, {n_published} events")
            elif n_stored == 0 or n_published == 0:
                check.missing.append(f"{offer_id}: {n_stored} memberships, {n_published} events")
    return check


def check_messages(ledger: Ledger, wire: Wire, stored: Stored) -> Check:
    check = Check("messages: each stored once and published once")
    stored_count: dict[tuple[str, str], int] = defaultdict(int)
    for document in stored.messages:
        key = (document.get("offer_id"), document.get("message_id"))
        if key[0] in ledger.offers:
            stored_count[key] += 1  # type: ignore[index]
    published: dict[tuple[str, str], set[str]] = defaultdict(set)
    for offer_id, records in wire.by_offer.items():
        for r in records:
            if r.value["type"] in ("MessagePosted", "TermsProposed"):
                published[(offer_id, r.value["message_id"])].add(r.value["event_id"])
    expected = ledger.messages | set(published) | set(stored_count)
    check.total = len(expected)
    for key in sorted(expected):
        n_stored, n_published = stored_count.get(key, 0), len(published.get(key, ()))
        what = f"{key[0]}/{key[1]}: stored {n_stored}, published {n_published}"
        if n_stored > 1 or n_published > 1:
            check.wrong.append(what)
        elif n_stored == 0 or n_published == 0:
            check.missing.append(what)
    return check


def expected_notifications(ledger: Ledger, wire: Wire) -> dict[tuple[str, str], str]:
    """(source event_id, recipient) -> kind, from SPEC §5's table."""
    expected: dict[tuple[str, str], str] = {}
    sources = [r for records in wire.by_offer.values() for r in records] + wire.members
    for r in distinct(sources).values():
        v = r.value
        client, freelancer = v.get("client_id"), v.get("freelancer_id")
        if v.get("offer_id") in ledger.offers:
            p = ledger.offers[v["offer_id"]]
            client, freelancer = p.client_id, p.freelancer_id
        plan: list[tuple[str | None, str]] = {
            "OfferExtended": [(freelancer, "offer_received")],
            "OfferChanged": [(freelancer, "offer_changed")],
            "OfferWithdrawn": [(freelancer, "offer_withdrawn")],
            "OfferAccepted": [(client, "offer_accepted")],
            "OfferDeclined": [(client, "offer_declined")],
            "OfferExpired": [(client, "offer_expired"), (freelancer, "offer_expired")],
            "ContractActivated": [(client, "contract_active"), (freelancer, "contract_active")],
            "TalentCloudMemberAdded": [(freelancer, "talent_cloud_joined")],
        }.get(v["type"], [])
        if v["type"] in ("MessagePosted", "TermsProposed"):
            other = client if v["sender_id"] == freelancer else freelancer
            kind = "new_message" if v["type"] == "MessagePosted" else "terms_proposed"
            plan = [(other, kind)]
        for recipient, kind in plan:
            if recipient:
                expected[(v["event_id"], recipient)] = kind
    return expected


def check_notifications(ledger: Ledger, wire: Wire, stored: Stored) -> Check:
    check = Check("notifications: one per (source event, recipient), stored and published")
    expected = expected_notifications(ledger, wire)
    published: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for r in wire.notifications:
        v = r.value
        published[(v["source_event_id"], v["recipient_id"])][v["notification_id"]] = v["kind"]
    people = ledger.people
    kept: dict[tuple[str, str], int] = defaultdict(int)
    for document in stored.notifications:
        if document.get("recipient_id") in people:
            kept[(document["source_event_id"], document["recipient_id"])] += 1
    check.total = len(expected)
    for key, kind in expected.items():
        found, n_stored = published.get(key, {}), kept.get(key, 0)
        what = f"{kind} for {key[1]} from {key[0]}: published {len(found)}, stored {n_stored}"
        if len(found) > 1 or n_stored > 1:
            check.wrong.append(what)
        elif not found or not n_stored:
            check.missing.append(what)
        elif set(found.values()) != {kind}:
            check.wrong.append(f"{what}, kind {sorted(found.values())}")
    for key, found in published.items():
        if key not in expected and set(found.values()) != {"offer_expiring"}:
            check.wrong.append(f"{sorted(found.values())} for {key[1]} from unknown {key[0]}")
    return check


def check_malformed(ledger: Ledger, wire: Wire) -> Check:
    check = Check("malformed: each dead-lettered or refused exactly once")
    check.total = len(ledger.malformed)
    refusals: dict[str, set[str]] = defaultdict(set)
    codes: dict[str, set[str]] = defaultdict(set)
    for r in wire.rejections:
        v = r.value
        refusals[v.get("command_id") or v.get("causation_id")].add(v["event_id"])
        codes[v.get("command_id") or v.get("causation_id")].add(v.get("code", ""))
    for m in ledger.malformed:
        if m.position is None:
            check.missing.append(f"{m.kind}: never sent")
            continue
        p = m.position
        where = f"{m.kind} at {p.topic}[{p.partition}]@{p.offset}"
        dead = wire.dead_letters.get((p.topic, p.partition, p.offset), [])
        refused = refusals.get(m.command_id or m.record_id, set())
        if m.fate == "dead-letter":
            if len(dead) > 1 or refused:
                check.wrong.append(f"{where}: dead-lettered {len(dead)}, refused {len(refused)}")
            elif not dead:
                check.missing.append(f"{where}: not dead-lettered")
            elif hashlib.sha256(dead[0].raw).hexdigest() != m.sha256:
                check.wrong.append(f"{where}: dead-lettered with other bytes")
        elif len(refused) > 1 or dead:
            check.wrong.append(f"{where}: refused {len(refused)}, dead-lettered {len(dead)}")
        elif not refused:
            check.missing.append(f"{where}: not refused")
        elif m.code is not None and codes[m.command_id or m.record_id] != {m.code}:
            found = codes[m.command_id or m.record_id]
            check.wrong.append(f"{where}: refused {', '.join(sorted(found))}, not {m.code}")
    return check


def sent_ids(records: Sequence[Record]) -> set[str]:
    """The ids of every message on the recorded topics (in its value or its headers)."""
    ids = {r.headers["event_id"] for r in records if "event_id" in r.headers}
    for record in records:
        if isinstance(record.value, dict) and "event_id" in record.value:
            ids.add(str(record.value["event_id"]))
    return ids


def check_outboxes(ledger: Ledger, records: Sequence[Record], stored: Stored) -> Check:
    check = Check("outboxes: nothing of the run left unpublished")
    sent = sent_ids(records)
    people = ledger.people
    mine: list[tuple[str, dict[str, Any]]] = [
        *(("offer", d) for k, d in stored.offers.items() if k in ledger.offers),
        *(("contract", d) for d in stored.contracts if d.get("offer_id") in ledger.offers),
        *(("message", d) for d in stored.messages if d.get("offer_id") in ledger.offers),
        *(("notification", d) for d in stored.notifications if d.get("recipient_id") in people),
        *(("rejection", d) for k, d in stored.rejections.items() if k in ledger.commands),
    ]
    check.total = len(mine)
    for what, document in mine:
        # A service's commands to itself are not recorded; what they cause is checked.
        unsent = [
            entry
            for entry in document.get("outbox", ())
            if not topics.is_internal(entry["topic"]) and entry["event_id"] not in sent
        ]
        if unsent:
            check.missing.append(f"{what} {document['_id']}: {len(unsent)} unsent")
    return check


def judge(ledger: Ledger, records: Iterable[Record], stored: Stored) -> Verdict:
    records = list(records)
    wire = scope(ledger, records)
    checks = [
        check_events(wire),
        check_commands(ledger, wire),
        check_offers(ledger, wire, stored),
        check_contracts(ledger, wire, stored),
    ]
    # What a service that does not run (a fault on one service alone) would have done
    # is not expected.
    if "messaging_service" in stored.services:
        checks.append(check_messages(ledger, wire, stored))
    if "notification_service" in stored.services:
        checks.append(check_notifications(ledger, wire, stored))
    checks.append(check_outboxes(ledger, records, stored))
    if ledger.races:
        checks.insert(3, check_races(ledger, wire))
    if ledger.malformed:
        checks.append(check_malformed(ledger, wire))
    summary = (
        f"{len(ledger.offers):,} offers, {len(ledger.commands):,} commands, "
        f"{len(ledger.malformed):,} malformed records, {len(wire.events):,} events"
    )
    return Verdict(ledger.name, checks, summary)


def wire_missing(ledger: Ledger, records: Iterable[Record]) -> int:
    """How many outcomes the run still waits for on the wire alone (cheap: no database)."""
    wire = scope(ledger, records)
    answered = {
        r.value.get("causation_id")
        for records_ in wire.by_offer.values()
        for r in records_
        if r.topic in OUTCOME_TOPICS
    } | {r.value.get("command_id") for r in wire.rejections}
    missing = sum(1 for command_id in ledger.commands if command_id not in answered)
    missing += len(check_malformed(ledger, wire).missing)
    published = {(r.value["source_event_id"], r.value["recipient_id"]) for r in wire.notifications}
    missing += sum(1 for key in expected_notifications(ledger, wire) if key not in published)
    for records_ in wire.by_offer.values():
        types = {r.value["type"] for r in records_}
        missing += "OfferAccepted" in types and "ContractActivated" not in types
    return missing


async def settle(
    ledger: Ledger,
    recorder: Recorder,
    databases: Databases,
    *,
    within: float = 120,
    quiet: float = 3,
    progress: Callable[[str], None] | None = None,
) -> Verdict:
    """Waits until nothing the run expects is missing any more (or `within` passed), lets
    late repeats arrive for `quiet` seconds, and judges. The databases are read only once
    the wire looks complete: reading them all the time would slow the services down."""
    deadline = time.monotonic() + within
    next_note = time.monotonic() + 10
    while True:
        await recorder.catch_up()
        waiting = wire_missing(ledger, recorder.records)
        if not waiting:
            verdict = judge(ledger, recorder.records, await databases.read())
            waiting = sum(len(c.missing) for c in verdict.checks)
        if not waiting or time.monotonic() > deadline:
            break
        if progress is not None and time.monotonic() > next_note:
            next_note += 10
            progress(f"waiting for {waiting:,} outcomes still missing...")
        await asyncio.sleep(1)
    await asyncio.sleep(quiet)
    await recorder.catch_up()
    return judge(ledger, recorder.records, await databases.read())
