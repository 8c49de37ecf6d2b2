"""offer_service's use cases: rules that only decide (services.runtime.decide: the runtime
loads the aggregate, keeps idempotency and commits).

Each runs on its aggregate's own partition, so it is the aggregate's one writer: an
offer's commands and its expiry on the offer's, a contract's activation, time log and time
entries on the contract's, a membership on its Talent Cloud's. Every path is safe to
repeat: a redelivered command finds its id among the aggregate's handled ones, a repeated
time entry finds its entry counted by the contract or stored, a second contract in a cloud
finds the membership.
"""

from __future__ import annotations

from datetime import datetime

from contracts import (
    AcceptOffer,
    ChangeOffer,
    DeclineOffer,
    ExtendOffer,
    LogTime,
    OfferAccepted,
    RejectionCode,
    WithdrawOffer,
)
from contracts.internal import ActivateContract, ExpireOffer, JoinTalentCloud, RecordTimeEntry
from services.rules import Rejection, derived_id
from services.runtime.decide import Changed, Outcome, Unchanged, Waits
from services.runtime.documents import MemoryDocuments
from services.runtime.outbox import OutboxEntry
from services.runtime.refusals import Refusals
from services.runtime.uow import UnitOfWork

from .clouds import TalentClouds
from .domain import contract as contract_rules
from .domain import offer as offer_rules
from .domain.contract import Contract, Membership, TimeEntry
from .domain.offer import Decision, Offer, Policy
from .store import OfferStore

OfferCommand = ExtendOffer | ChangeOffer | WithdrawOffer | AcceptOffer | DeclineOffer


def activation_of(decision: Decision, uow: UnitOfWork) -> list[OutboxEntry]:
    """An accepted offer asks for its contract, in the same write as the acceptance."""
    return [
        uow.to_self(
            ActivateContract(
                command_id=derived_id("activate", event.event_id),
                contract_id=contract_rules.contract_id_for(event.offer_id),
                job_id=decision.offer.job_id,
                accepted=event,
            )
        )
        for event in decision.events
        if isinstance(event, OfferAccepted)
    ]


class OfferHandlers:
    def __init__(
        self,
        store: OfferStore,
        uow: UnitOfWork,
        refusals: Refusals,
        *,
        policy: Policy,
        clouds: TalentClouds | None = None,
    ) -> None:
        self.store = store
        self.uow = uow
        self.refusals = refusals
        self.policy = policy
        self.clouds = clouds or TalentClouds(MemoryDocuments("talent_clouds"))

    # --- offers (the offer's partition) -----------------------------------------------------

    def extend(self, offer: Offer | None, command: ExtendOffer, now: datetime) -> Outcome[Offer]:
        return self._decided(command, offer_rules.extend(offer, command, now, self.policy))

    def change(self, offer: Offer | None, command: ChangeOffer, now: datetime) -> Outcome[Offer]:
        return self._decided(command, offer_rules.change(offer, command, now, self.policy))

    def withdraw(
        self, offer: Offer | None, command: WithdrawOffer, now: datetime
    ) -> Outcome[Offer]:
        return self._decided(command, offer_rules.withdraw(offer, command, now, self.policy))

    def accept(self, offer: Offer | None, command: AcceptOffer, now: datetime) -> Outcome[Offer]:
        return self._decided(command, offer_rules.accept(offer, command, now, self.policy))

    def decline(self, offer: Offer | None, command: DeclineOffer, now: datetime) -> Outcome[Offer]:
        return self._decided(command, offer_rules.decline(offer, command, now, self.policy))

    def _decided(self, command: OfferCommand, outcome: Decision | Rejection) -> Outcome[Offer]:
        if isinstance(outcome, Rejection):
            return outcome
        offer = outcome.offer
        return Changed(
            offer,
            [*outcome.events, *activation_of(outcome, self.uow)],
            said=f"offer {offer.offer_id}: {command.type} -> {offer.status} (v{offer.version})",
        )

    async def vet_cloud(self, offer: Offer, now: datetime) -> Rejection | None:
        """The Talent Cloud the terms name must be the client's: the database arbitrates
        the first claim (services.offer_service.clouds). Made again for a command handled
        before, as a crash may have come between the offer's write and the claim."""
        return await self.clouds.vet(offer, now)

    def expire(self, offer: Offer | None, command: ExpireOffer, now: datetime) -> Outcome[Offer]:
        """The sweep found the offer due; it expires if it still is (a command may have
        closed or changed it since)."""
        if offer is None:
            return Unchanged("there is no such offer")
        decision = offer_rules.expire(offer, now=now, sweep_id=command.command_id)
        if decision is None:
            return Unchanged(f"not expired: it is {offer.status}, until {offer.expires_at}")
        return Changed(
            decision.offer,
            decision.events,
            said=f"offer {offer.offer_id} expired (was due {offer.expires_at.isoformat()})",
        )

    # --- contracts (the contract's partition) -----------------------------------------------

    def activate_contract(
        self, contract: Contract | None, command: ActivateContract, now: datetime
    ) -> Outcome[Contract]:
        """Activates the accepted offer's one contract; asks its Talent Cloud for the
        freelancer's membership in the same write."""
        if contract is not None:
            return Unchanged("activated before")
        contract, activated = contract_rules.activate(
            command.accepted, job_id=command.job_id, now=now
        )
        join = contract_rules.talent_cloud_join(contract, causation_id=command.accepted.event_id)
        return Changed(
            contract,
            [activated, *([] if join is None else [self.uow.to_self(join)])],
            said=f"contract {contract.contract_id} activated for offer {contract.offer_id}",
        )

    def log_time(
        self, contract: Contract | None, command: LogTime, now: datetime
    ) -> Outcome[Contract]:
        """Counts the hours in their week, and asks in the same write for the entry to be
        stored (RecordTimeEntry): an entry is stored only once counted, so one found stored
        tells a repeat, and a counted one not stored yet is on its way."""
        if contract is None:
            return Waits(
                RejectionCode.UNKNOWN_CONTRACT, f"there is no contract {command.contract_id!r}"
            )
        outcome = contract_rules.log_time(contract, command, now=now)
        if isinstance(outcome, Rejection):
            return outcome
        counted, logged, entry = outcome
        return Changed(
            counted,
            [logged, self.uow.to_self(entry)],
            said=f"contract {counted.contract_id}: {command.hours} hours logged for "
            f"{command.work_date} (entry {command.entry_id})",
        )

    def record_time_entry(
        self, entry: TimeEntry | None, command: RecordTimeEntry, now: datetime
    ) -> Outcome[TimeEntry]:
        if entry is not None:
            return Unchanged(f"time entry {command.entry_id} is stored already")
        return Changed(contract_rules.recorded_entry(command))

    # --- Talent Cloud memberships (the cloud's partition) -----------------------------------

    def join_talent_cloud(
        self, member: Membership | None, command: JoinTalentCloud, now: datetime
    ) -> Outcome[Membership]:
        """Adds the freelancer to the cloud, once however many contracts bring them."""
        cloud, freelancer = command.talent_cloud_id, command.freelancer_id
        if member is not None:
            return Unchanged(f"{freelancer} is in Talent Cloud {cloud} since {member.contract_id}")
        added = contract_rules.membership_added(command, now=now)
        return Changed(
            Membership(cloud, freelancer, command.contract_id, joined_at=added.occurred_at),
            [added],
            said=f"freelancer {freelancer} joined Talent Cloud {cloud}",
        )
