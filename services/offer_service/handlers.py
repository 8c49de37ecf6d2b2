"""offer_service's use cases: each loads its aggregate, lets the domain decide and commits
the decision with its events (services.runtime.uow).

Each handler runs on its aggregate's own partition, so it is the aggregate's one writer: an
offer's commands and its expiry on the offer's, a contract's activation and time log on the
contract's, a membership on its Talent Cloud's. Every path is safe to repeat: a redelivered
command is recognised by its command_id, a repeated activation or membership by the
document it already created.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

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
from contracts.internal import ActivateContract, ExpireOffer, JoinTalentCloud
from services.rules import Rejection, derived_id
from services.runtime.documents import MemoryDocuments
from services.runtime.outbox import OutboxEntry
from services.runtime.refusals import Refusals
from services.runtime.uow import UnitOfWork

from .clouds import TalentClouds
from .domain import contract as contract_rules
from .domain import offer as offer_rules
from .domain.offer import Decision, Offer, Outcome, Policy
from .store import OfferStore, time_entry_document, time_entry_id

log = logging.getLogger(__name__)

# The offer commands, each decided by its own rule (services.offer_service.domain.offer).
C = TypeVar("C", bound=ExtendOffer | ChangeOffer | WithdrawOffer | AcceptOffer | DeclineOffer)


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

    async def extend(self, command: ExtendOffer) -> None:
        await self._decide(command, offer_rules.extend, names_cloud=True)

    async def change(self, command: ChangeOffer) -> None:
        await self._decide(command, offer_rules.change, names_cloud=True)

    async def withdraw(self, command: WithdrawOffer) -> None:
        await self._decide(command, offer_rules.withdraw)

    async def accept(self, command: AcceptOffer) -> None:
        await self._decide(command, offer_rules.accept)

    async def decline(self, command: DeclineOffer) -> None:
        await self._decide(command, offer_rules.decline)

    async def _decide(
        self,
        command: C,
        rule: Callable[[Offer | None, C, datetime, Policy], Outcome],
        *,
        names_cloud: bool = False,
    ) -> None:
        """A command's rule applied to its offer, once: the outcome stored with its events,
        or refused. The Talent Cloud of terms it sends must be the client's (`clouds.vet`)."""
        stored = await self.uow.load(self.store.offers, command.offer_id)
        now = self.uow.clock()
        if stored is not None and command.command_id in stored.handled:
            log.info("%s %s already handled; not repeated", command.type, command.command_id)
            # A crash may have come between the offer's write and its cloud's claim (a
            # batch stores an offer first): the claim is made again (once, by its _id).
            cloud = stored.value.terms.talent_cloud_id
            if names_cloud and cloud is not None:
                await self.clouds.claim(cloud, stored.value.client_id, command.offer_id, now)
            return
        outcome = rule(None if stored is None else stored.value, command, now, self.policy)
        if names_cloud and isinstance(outcome, Decision):
            outcome = await self.clouds.vet(outcome, now)
        if isinstance(outcome, Rejection):
            await self.refusals.refuse(command, outcome)
            return
        await self.uow.commit(
            self.store.offers,
            outcome.offer,
            expected=stored,
            messages=[*outcome.events, *activation_of(outcome, self.uow)],
            handled=[command.command_id],
        )
        log.info(
            "offer %s: %s -> %s (v%d)",
            command.offer_id,
            command.type,
            outcome.offer.status,
            outcome.offer.version,
        )

    async def expire(self, command: ExpireOffer) -> None:
        """The sweep found the offer due; it expires if it still is (a command may have
        closed or changed it since)."""
        stored = await self.uow.load(self.store.offers, command.offer_id)
        if stored is None or command.command_id in stored.handled:
            return
        decision = offer_rules.expire(
            stored.value, now=self.uow.clock(), sweep_id=command.command_id
        )
        if decision is None:
            return
        await self.uow.commit(
            self.store.offers,
            decision.offer,
            expected=stored,
            messages=decision.events,
            handled=[command.command_id],
        )
        log.info(
            "offer %s expired (was due %s)", command.offer_id, stored.value.expires_at.isoformat()
        )

    # --- contracts (the contract's partition) -----------------------------------------------

    async def activate_contract(self, command: ActivateContract) -> None:
        """Activates the accepted offer's one contract; asks its Talent Cloud for the
        freelancer's membership in the same write."""
        if await self.uow.load(self.store.contracts, command.contract_id) is not None:
            return  # activated before: what it left unpublished is out now
        contract, activated = contract_rules.activate(
            command.accepted, job_id=command.job_id, now=self.uow.clock()
        )
        join = contract_rules.talent_cloud_join(contract, causation_id=command.accepted.event_id)
        requests = [] if join is None else [self.uow.to_self(join)]
        await self.uow.commit(
            self.store.contracts, contract, expected=None, messages=[activated, *requests]
        )
        log.info("contract %s activated for offer %s", contract.contract_id, contract.offer_id)

    async def log_time(self, command: LogTime) -> None:
        stored = await self.uow.require(
            self.store.contracts,
            command.contract_id,
            code=RejectionCode.UNKNOWN_CONTRACT,
            message=f"there is no contract {command.contract_id!r}",
        )
        entries = self.store.time_entries
        written = await entries.get(time_entry_id(command.contract_id, command.entry_id))
        if written is not None and stored.revision >= written["counted_at"]:
            log.info("LogTime %s (entry %s) already handled", command.command_id, command.entry_id)
            return
        outcome = contract_rules.log_time(stored.value, command, now=self.uow.clock())
        if isinstance(outcome, Rejection):
            await self.refusals.refuse(command, outcome)
            return
        contract, logged, entry = outcome
        if written is None:  # else written before a crash, its hours not counted yet
            counted_at = stored.revision + 1
            await entries.insert(time_entry_document(contract, entry, counted_at=counted_at))
        await self.uow.commit(self.store.contracts, contract, expected=stored, messages=[logged])

    # --- Talent Cloud memberships (the cloud's partition) -----------------------------------

    async def join_talent_cloud(self, command: JoinTalentCloud) -> None:
        """Adds the freelancer to the cloud, once however many contracts bring them."""
        member_id = contract_rules.member_id_for(command.talent_cloud_id, command.freelancer_id)
        added = contract_rules.membership_added(command, now=self.uow.clock())
        document = {
            "_id": member_id,
            "talent_cloud_id": command.talent_cloud_id,
            "freelancer_id": command.freelancer_id,
            "contract_id": command.contract_id,
            "joined_at": added.occurred_at,
        }
        if await self.uow.insert_once(self.store.members, document, [added]):
            log.info(
                "freelancer %s joined Talent Cloud %s",
                command.freelancer_id,
                command.talent_cloud_id,
            )
