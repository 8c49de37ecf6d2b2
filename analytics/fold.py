"""Events into rows, with no I/O: the part of the consumer worth reading first.

An event is read tolerantly (a dict, fields looked up by name, unknown ones ignored) when its
``schema_version`` is one the released schemas (contracts/schemas/released/) hold; a newer one
is kept raw but not folded, since its fields may mean something else. Every fold takes ALL
the events of one aggregate in any order, repeats included, and gives the same rows: the
events are sorted and deduplicated here, so what the topics deliver late or twice is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import contracts
from contracts import topics

OFFER_TOPICS: Final = (topics.OFFERS_EVENTS, topics.NEGOTIATIONS_EVENTS)
TOPICS: Final = (
    topics.OFFERS_EVENTS,
    topics.CONTRACTS_EVENTS,
    topics.NEGOTIATIONS_EVENTS,
    topics.TALENT_CLOUDS_EVENTS,
)
ENDINGS: Final = {
    "OfferAccepted": "accepted",
    "OfferDeclined": "declined",
    "OfferWithdrawn": "withdrawn",
    "OfferExpired": "expired",
}
_RELEASED: Final = Path(contracts.__file__).parent / "schemas" / "released"


def released_versions(directory: Path = _RELEASED) -> dict[str, frozenset[int]]:
    """{event type: the schema versions released for it}, from `Name.vN.json` file names."""
    found: dict[str, set[int]] = {}
    for path in directory.glob("*.v*.json"):
        name, version = path.name.removesuffix(".json").rsplit(".v", 1)
        found.setdefault(name, set()).add(int(version))
    return {name: frozenset(versions) for name, versions in found.items()}


RELEASED: Final = released_versions()


@dataclass(frozen=True, slots=True)
class Event:
    """One event as landed: what every event has, and the rest of it as it came."""

    event_id: str
    type: str
    schema_version: int
    aggregate_id: str
    occurred_at: datetime
    data: Mapping[str, Any] = field(repr=False)

    @property
    def readable(self) -> bool:
        """Whether this consumer knows the event's schema version (else it is kept, unfolded)."""
        return self.schema_version in RELEASED.get(self.type, frozenset())


class Unreadable(ValueError):
    """A record that is no event at all (not JSON, or without the fields every event has)."""


def utc(text: str) -> datetime:
    """An RFC 3339 UTC time as a naive UTC datetime, as DuckDB's TIMESTAMP holds it."""
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


def read_event(topic: str, value: bytes | None) -> Event:
    try:
        data = json.loads(value or b"")
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return Event(
            event_id=str(data["event_id"]),
            type=str(data["type"]),
            schema_version=int(data.get("schema_version", 1)),
            aggregate_id=str(data[topics.KEYS[topic]]),
            occurred_at=utc(data["occurred_at"]),
            data=data,
        )
    except (ValueError, TypeError, KeyError) as error:
        raise Unreadable(f"not an event: {type(error).__name__} {error}") from error


def _settled(events: Iterable[Event]) -> list[Event]:
    """Readable events once each (by event_id), in a fixed order whatever the arrival order."""
    unique = {e.event_id: e for e in events if e.readable}
    return sorted(unique.values(), key=lambda e: (e.occurred_at, e.event_id))


def _amount(terms: Mapping[str, Any]) -> Decimal | None:
    """The price of terms: the hourly rate of an hourly offer, the total of a fixed one."""
    value = terms.get("hourly_rate" if terms.get("contract_type") == "hourly" else "total_amount")
    return None if value is None else Decimal(value)


# --- offers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OfferVersion:
    offer_id: str
    version: int
    sent_at: datetime
    contract_type: str | None
    currency: str | None
    amount: Decimal | None
    title: str | None
    start_date: str | None
    end_date: str | None
    hourly_rate: Decimal | None
    weekly_limit_hours: int | None
    total_amount: Decimal | None
    milestones: list[Any] | None
    talent_cloud_id: str | None
    po_number: str | None
    custom_fields: dict[str, Any] | None
    terms: dict[str, Any]
    message: str | None
    in_response_to: str | None
    expires_at: datetime | None
    event_id: str


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    client_id: str
    freelancer_id: str
    job_id: str
    proposal_id: str | None
    contract_type: str | None
    currency: str | None
    first_amount: Decimal | None
    last_amount: Decimal | None
    amount_change: float | None
    versions: int
    messages: int
    proposals: int
    status: str
    extended_at: datetime
    ended_at: datetime | None
    expires_at: datetime | None
    close_reason: str | None


def _version(event: Event) -> OfferVersion:
    data, terms = event.data, event.data.get("terms") or {}

    def money(name: str) -> Decimal | None:
        return None if terms.get(name) is None else Decimal(terms[name])

    expires_at = data.get("expires_at")
    return OfferVersion(
        offer_id=event.aggregate_id,
        version=int(data["version"]),
        sent_at=event.occurred_at,
        contract_type=terms.get("contract_type"),
        currency=terms.get("currency", "USD"),
        amount=_amount(terms),
        title=terms.get("title"),
        start_date=terms.get("start_date"),
        end_date=terms.get("end_date"),
        hourly_rate=money("hourly_rate"),
        weekly_limit_hours=terms.get("weekly_limit_hours"),
        total_amount=money("total_amount"),
        milestones=terms.get("milestones"),
        talent_cloud_id=terms.get("talent_cloud_id"),
        po_number=terms.get("po_number"),
        custom_fields=terms.get("custom_fields"),
        terms=dict(terms),
        message=data.get("message"),
        in_response_to=data.get("in_response_to"),
        expires_at=None if expires_at is None else utc(expires_at),
        event_id=event.event_id,
    )


def fold_offer(events: Iterable[Event]) -> tuple[Offer | None, list[OfferVersion]]:
    """One offer's row and its versions from all its events (offers.events and
    negotiations.events). No row before its OfferExtended has been seen: a thread's
    messages can arrive before the offer they are about, on their own topic."""
    settled = _settled(events)
    versions: dict[int, OfferVersion] = {}
    for event in settled:
        if event.type in ("OfferExtended", "OfferChanged"):
            versions.setdefault(int(event.data["version"]), _version(event))
    extended = next((e for e in settled if e.type == "OfferExtended"), None)
    if extended is None:
        return None, sorted(versions.values(), key=lambda v: v.version)
    ending = next((e for e in settled if e.type in ENDINGS), None)
    first, last = versions[min(versions)], versions[max(versions)]
    if ending is not None and ending.type == "OfferAccepted":
        accepted_terms = ending.data.get("terms") or {}
        last_type, last_currency = (
            accepted_terms.get("contract_type"),
            accepted_terms.get("currency", "USD"),
        )
        last_amount = _amount(accepted_terms)
    else:
        last_type, last_currency, last_amount = last.contract_type, last.currency, last.amount
    comparable = (first.contract_type, first.currency) == (last_type, last_currency)
    change = (
        float(last_amount / first.amount - 1)
        if comparable and first.amount and last_amount is not None
        else None
    )

    def distinct(type_: str) -> int:
        return len({e.data.get("message_id") for e in settled if e.type == type_})

    ended_at = None
    if ending is not None:
        accepted_at = ending.data.get("accepted_at")
        ended_at = utc(accepted_at) if accepted_at else ending.occurred_at
    offer = Offer(
        offer_id=extended.aggregate_id,
        client_id=extended.data["client_id"],
        freelancer_id=extended.data["freelancer_id"],
        job_id=extended.data["job_id"],
        proposal_id=extended.data.get("proposal_id"),
        contract_type=last_type,
        currency=last_currency,
        first_amount=first.amount,
        last_amount=last_amount,
        amount_change=change,
        versions=len(versions),
        messages=distinct("MessagePosted"),
        proposals=distinct("TermsProposed"),
        status=ENDINGS[ending.type] if ending is not None else "pending",
        extended_at=extended.occurred_at,
        ended_at=ended_at,
        expires_at=last.expires_at,
        close_reason=None if ending is None else ending.data.get("reason"),
    )
    return offer, sorted(versions.values(), key=lambda v: v.version)


# --- contracts and talent clouds -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contract:
    contract_id: str
    offer_id: str
    offer_version: int
    job_id: str
    client_id: str
    freelancer_id: str
    contract_type: str | None
    currency: str | None
    amount: Decimal | None
    talent_cloud_id: str | None
    terms: dict[str, Any]
    activated_at: datetime
    time_entries: int
    hours_logged: Decimal


def fold_contract(events: Iterable[Event]) -> Contract | None:
    """A contract's row from its ContractActivated and TimeLogged events (None before the
    first: time is only logged on an active contract, so that would be an odd topic)."""
    settled = _settled(events)
    activated = next((e for e in settled if e.type == "ContractActivated"), None)
    if activated is None:
        return None
    data, terms = activated.data, activated.data.get("terms") or {}
    entries = {
        e.data["entry_id"]: Decimal(e.data["hours"]) for e in settled if e.type == "TimeLogged"
    }
    return Contract(
        contract_id=activated.aggregate_id,
        offer_id=data["offer_id"],
        offer_version=int(data["offer_version"]),
        job_id=data["job_id"],
        client_id=data["client_id"],
        freelancer_id=data["freelancer_id"],
        contract_type=terms.get("contract_type"),
        currency=terms.get("currency", "USD"),
        amount=_amount(terms),
        talent_cloud_id=terms.get("talent_cloud_id"),
        terms=dict(terms),
        activated_at=utc(data["activated_at"]),
        time_entries=len(entries),
        hours_logged=sum(entries.values(), Decimal(0)),
    )


@dataclass(frozen=True, slots=True)
class Member:
    talent_cloud_id: str
    freelancer_id: str
    contract_id: str
    joined_at: datetime


def fold_members(events: Iterable[Event]) -> list[Member]:
    """A Talent Cloud's members: the first TalentCloudMemberAdded of each freelancer."""
    members: dict[str, Member] = {}
    for event in _settled(events):
        if event.type == "TalentCloudMemberAdded":
            freelancer = event.data["freelancer_id"]
            members.setdefault(
                freelancer,
                Member(
                    event.aggregate_id, freelancer, event.data["contract_id"], event.occurred_at
                ),
            )
    return sorted(members.values(), key=lambda m: m.freelancer_id)
