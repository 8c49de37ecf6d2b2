"""Contracts (SPEC §4, §5): activated once per accepted offer; hourly ones take time entries.

Talent Cloud membership is keyed by (cloud, freelancer), so a second contract in the
same cloud adds nobody twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType

from contracts import (
    ContractActivated,
    HourlyTerms,
    LogTime,
    OfferAccepted,
    OfferTerms,
    RejectionCode,
    TalentCloudMemberAdded,
    TimeLogged,
)
from contracts.internal import JoinTalentCloud, RecordTimeEntry
from services.rules import Rejection, derived_id

from .offer import new_event_id


def contract_id_for(offer_id: str) -> str:
    """One contract per accepted offer: its id is derived from the offer's."""
    return derived_id("contract", offer_id)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True, slots=True)
class TimeEntry:
    contract_id: str
    entry_id: str
    work_date: date
    hours: Decimal
    memo: str | None
    logged_at: datetime


@dataclass(frozen=True, slots=True)
class Membership:
    """A freelancer's place in a Talent Cloud: one, however many contracts bring them."""

    talent_cloud_id: str
    freelancer_id: str
    contract_id: str  # the contract that brought them first
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class Contract:
    """A contract's state: the week's totals are kept as they change, so a contract stays
    one small document however much time is logged on it. The entries themselves are
    documents of their own (offer_service.store), written once each."""

    contract_id: str
    offer_id: str
    offer_version: int
    job_id: str
    client_id: str
    freelancer_id: str
    terms: OfferTerms
    activated_at: datetime
    hours_by_week: Mapping[str, Decimal] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def status(self) -> str:
        return "active"


def activate(
    accepted: OfferAccepted, *, job_id: str, now: datetime
) -> tuple[Contract, ContractActivated]:
    contract = Contract(
        contract_id=contract_id_for(accepted.offer_id),
        offer_id=accepted.offer_id,
        offer_version=accepted.version,
        job_id=job_id,
        client_id=accepted.client_id,
        freelancer_id=accepted.freelancer_id,
        terms=accepted.terms,
        activated_at=now,
    )
    event = ContractActivated(
        event_id=new_event_id(),
        occurred_at=now,
        causation_id=accepted.event_id,
        contract_id=contract.contract_id,
        offer_id=contract.offer_id,
        offer_version=contract.offer_version,
        job_id=job_id,
        client_id=contract.client_id,
        freelancer_id=contract.freelancer_id,
        terms=contract.terms,
        activated_at=now,
    )
    return contract, event


def talent_cloud_join(contract: Contract, *, causation_id: str) -> JoinTalentCloud | None:
    """The Talent Cloud the freelancer joins with this contract, if its terms name one: a
    request to the cloud's own partition, which adds each freelancer once."""
    cloud = contract.terms.talent_cloud_id
    if cloud is None:
        return None
    return JoinTalentCloud(
        command_id=derived_id("join", contract.contract_id),
        talent_cloud_id=cloud,
        freelancer_id=contract.freelancer_id,
        contract_id=contract.contract_id,
        causation_id=causation_id,
    )


def recorded_entry(command: RecordTimeEntry) -> TimeEntry:
    return TimeEntry(
        command.contract_id,
        command.entry_id,
        command.work_date,
        command.hours,
        command.memo,
        command.logged_at,
    )


def member_id_for(talent_cloud_id: str, freelancer_id: str) -> str:
    return derived_id("member", talent_cloud_id, freelancer_id)


def membership_added(command: JoinTalentCloud, *, now: datetime) -> TalentCloudMemberAdded:
    return TalentCloudMemberAdded(
        event_id=new_event_id(),
        occurred_at=now,
        causation_id=command.causation_id,
        talent_cloud_id=command.talent_cloud_id,
        freelancer_id=command.freelancer_id,
        contract_id=command.contract_id,
    )


def hours_by_week(entries: Iterable[TimeEntry]) -> Mapping[str, Decimal]:
    """Hours logged per ISO week."""
    totals: dict[str, Decimal] = {}
    for entry in entries:
        week = iso_week(entry.work_date)
        totals[week] = totals.get(week, Decimal(0)) + entry.hours
    return MappingProxyType(totals)


def log_time(
    contract: Contract, command: LogTime, *, now: datetime
) -> tuple[Contract, TimeLogged, RecordTimeEntry] | Rejection:
    """The hours counted in their week's total, and the entry asked for: stored once the
    contract's write is (contracts.internal.RecordTimeEntry)."""
    if command.actor_id != contract.freelancer_id:
        return Rejection(
            RejectionCode.NOT_AUTHORIZED,
            f"only the contract's freelancer may log time on contract "
            f"{contract.contract_id!r}; {command.actor_id!r} is not",
        )
    terms = contract.terms
    if not isinstance(terms, HourlyTerms):
        return Rejection(
            RejectionCode.NOT_HOURLY,
            f"contract {contract.contract_id!r} is fixed-price: time is not logged on it",
        )
    if command.work_date < terms.start_date:
        return Rejection(
            RejectionCode.OUTSIDE_CONTRACT_DATES,
            f"contract {contract.contract_id!r} starts on {terms.start_date}; "
            f"no time can be logged for {command.work_date}",
        )
    if command.work_date > terms.end_date:
        return Rejection(
            RejectionCode.OUTSIDE_CONTRACT_DATES,
            f"contract {contract.contract_id!r} ended on {terms.end_date}; "
            f"no time can be logged for {command.work_date}",
        )
    week = iso_week(command.work_date)
    total = contract.hours_by_week.get(week, Decimal(0)) + command.hours
    limit = terms.weekly_limit_hours
    if limit is not None and total > limit:
        logged = contract.hours_by_week.get(week, Decimal(0))
        return Rejection(
            RejectionCode.WEEKLY_LIMIT_EXCEEDED,
            f"week {week} already has {logged} of {limit} hours on contract "
            f"{contract.contract_id!r}; {command.hours} more would exceed the weekly limit",
        )
    event = TimeLogged(
        event_id=new_event_id(),
        occurred_at=now,
        causation_id=command.command_id,
        contract_id=contract.contract_id,
        entry_id=command.entry_id,
        work_date=command.work_date,
        hours=command.hours,
    )
    entry = RecordTimeEntry(
        command_id=derived_id("record", event.event_id),
        contract_id=contract.contract_id,
        entry_id=command.entry_id,
        work_date=command.work_date,
        hours=command.hours,
        memo=command.memo,
        logged_at=now,
    )
    weeks = MappingProxyType({**contract.hours_by_week, week: total})
    return replace(contract, hours_by_week=weeks), event, entry
