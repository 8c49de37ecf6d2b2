"""offer_service's use cases: read the aggregate, let the domain decide, store the decision
with its events in one write, publish, and only then let the message be acknowledged.

Every path is safe to repeat: a redelivered command is recognised by its command_id, a
redelivered event by the document it already created.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
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
    topics,
)
from services.runtime.outbox import OutboxEntry, Publish
from services.runtime.ownership import Ownership
from services.runtime.refusals import Refusals, Rejection
from services.runtime.wire import derived_id

from .domain import contract as contract_rules
from .domain import offer as offer_rules
from .domain.offer import Decision, Policy
from .store import AlreadyExists, Conflict, Document, MongoOfferStore

log = logging.getLogger(__name__)

OfferCommand = ExtendOffer | ChangeOffer | WithdrawOffer | AcceptOffer | DeclineOffer
Clock = Callable[[], datetime]
MAX_CONFLICT_RETRIES = 10


def offer_entries(decision: Decision) -> list[OutboxEntry]:
    return [
        OutboxEntry.of(event, topic=topics.OFFERS_EVENTS, key=decision.offer.offer_id)
        for event in decision.events
    ]


class OfferHandlers:
    def __init__(
        self,
        store: MongoOfferStore,
        publish: Publish,
        *,
        policy: Policy,
        clock: Clock,
        unknown_contract_wait: float,
        offers: Ownership,
        contracts: Ownership,
        refusals: Refusals,
    ) -> None:
        self.refusals = refusals
        # The one-writer rule (services.runtime.ownership): an offer is read, decided and
        # written holding `offers.writing(offer_id)`, a contract holding
        # `contracts.writing(contract_id)`.
        self.offers = offers
        self.contracts = contracts
        self.store = store
        self.publish = publish
        self.policy = policy
        self.clock = clock
        self.unknown_contract_wait = unknown_contract_wait

    # --- offers -----------------------------------------------------------------------------

    async def handle_offer_command(self, command: OfferCommand) -> None:
        if await self.refusals.already_refused(command.command_id):
            return
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                async with self.offers.writing(command.offer_id):
                    await self._try_offer_command(command)
                return
            except (Conflict, AlreadyExists):
                continue  # somebody wrote the offer meanwhile: read again, decide again
        raise RuntimeError(
            f"offer {command.offer_id}: {MAX_CONFLICT_RETRIES} conflicting writes in a row "
            f"while handling {command.type} {command.command_id}; will retry on redelivery"
        )

    async def _try_offer_command(self, command: OfferCommand) -> None:
        stored = await self.store.get_offer(command.offer_id)
        if stored is not None:
            if command.command_id in stored.handled:
                log.info("%s %s already handled; not repeated", command.type, command.command_id)
                await self.store.offers_outbox.flush(stored.document, self.publish)
                return
            # Publish what an earlier write left behind first, so events stay in order.
            await self.store.offers_outbox.flush(stored.document, self.publish)
        now = self.clock()
        if isinstance(command, ExtendOffer):
            if stored is not None:
                await self.refusals.refuse(
                    command,
                    Rejection(
                        RejectionCode.OFFER_EXISTS,
                        f"offer {command.offer_id!r} already exists (status "
                        f"{stored.value.status}); use ChangeOffer to send different terms",
                        status=stored.value.status,
                    ),
                )
                return
            outcome = offer_rules.extend(command, now=now, policy=self.policy)
        elif stored is None:
            await self.refusals.refuse(
                command,
                Rejection(RejectionCode.UNKNOWN_OFFER, f"there is no offer {command.offer_id!r}"),
            )
            return
        else:
            outcome = offer_rules.decide(stored.value, command, now=now, policy=self.policy)

        if isinstance(outcome, Rejection):
            await self.refusals.refuse(command, outcome)
            return
        entries = offer_entries(outcome)
        if stored is None:
            document = await self.store.create_offer(
                outcome.offer, command.command_id, entries, now
            )
        else:
            document = await self.store.update_offer(
                outcome.offer, stored, command.command_id, entries, now
            )
        log.info(
            "offer %s: %s -> %s (v%d)",
            command.offer_id,
            command.type,
            outcome.offer.status,
            outcome.offer.version,
        )
        await self.store.offers_outbox.flush(document, self.publish)

    async def sweep_expired(self) -> int:
        """Expires every pending offer past expires_at that this instance owns; the owner of
        an offer is its one writer, so each offer expires exactly once however many
        instances sweep."""
        sweep_id = str(uuid.uuid4())
        now = self.clock()

        async def expire_if_due(document: Document) -> bool:
            offer_id: str = document["_id"]
            if document["expires_at"] > now or not self.offers.owns(offer_id):
                return False  # not yet, or its owner sweeps it
            async with self.offers.writing(offer_id):
                return await self._expire(offer_id, sweep_id)

        return await self.store.expiry.sweep(now, expire_if_due)

    async def _expire(self, offer_id: str, sweep_id: str) -> bool:
        stored = await self.store.get_offer(offer_id)  # again: a command may have come first
        now = self.clock()
        decision = (
            None if stored is None else offer_rules.expire(stored.value, now=now, sweep_id=sweep_id)
        )
        if stored is None or decision is None:
            return False
        await self.store.offers_outbox.flush(stored.document, self.publish)
        try:
            document = await self.store.update_offer(
                decision.offer, stored, sweep_id, offer_entries(decision), now
            )
        except Conflict:
            return False  # changed under us (possible only on a real MongoDB replica set)
        log.info("offer %s expired (was due %s)", offer_id, stored.value.expires_at.isoformat())
        await self.store.offers_outbox.flush(document, self.publish)
        return True

    # --- contracts --------------------------------------------------------------------------

    async def on_offer_accepted(self, accepted: OfferAccepted) -> None:
        """Activates the offer's one contract and adds the Talent Cloud membership."""
        contract_id = contract_rules.contract_id_for(accepted.offer_id)
        stored = await self.store.get_contract(contract_id)
        if stored is None:
            offer = await self.store.get_offer(accepted.offer_id)
            if offer is None:
                # Only this service writes offers.events, so this is a foreign or corrupt
                # record: skipping it keeps the partition moving.
                log.error(
                    "skipped OfferAccepted %s: offer %s is not in this service's database",
                    accepted.event_id,
                    accepted.offer_id,
                )
                return
            now = self.clock()
            contract, activated = contract_rules.activate(
                accepted, job_id=offer.value.job_id, now=now
            )
            entry = OutboxEntry.of(activated, topic=topics.CONTRACTS_EVENTS, key=contract_id)
            document = await self.store.create_contract(contract, [entry], now)
            if document is not None:
                log.info("contract %s activated for offer %s", contract_id, accepted.offer_id)
                await self._flush_contract(document)
            stored = await self.store.get_contract(contract_id)
            assert stored is not None
        else:
            await self._flush_contract(stored.document)
        await self._join_talent_cloud(stored.value, accepted.event_id)

    async def _flush_contract(self, document: Document) -> None:
        """Publishes a new contract's outbox from the offers.events side, where the contract's
        owner (its contracts.commands partition) may be another instance."""
        contract_id = document["_id"]
        if self.contracts.owns(contract_id):
            async with self.contracts.writing(contract_id):
                await self.store.contracts_outbox.flush(document, self.publish)
        else:
            # Publish now; only the owner writes the contract, so its relay clears the outbox.
            await self.publish([OutboxEntry.from_document(e) for e in document["outbox"]])

    async def _join_talent_cloud(self, contract: contract_rules.Contract, cause: str) -> None:
        cloud = contract.terms.talent_cloud_id
        if cloud is None:
            return
        member_id = derived_id("member", cloud, contract.freelancer_id)
        now = self.clock()
        added = contract_rules.membership(contract, now=now, causation_id=cause)
        assert added is not None
        entry = OutboxEntry.of(added, topic=topics.TALENT_CLOUDS_EVENTS, key=cloud)
        document = await self.store.add_member(
            member_id,
            {
                "talent_cloud_id": cloud,
                "freelancer_id": contract.freelancer_id,
                "contract_id": contract.contract_id,
            },
            entry,
            now,
        )
        if document is None:
            document = await self.store.members.find_one({"_id": member_id})
        else:
            log.info("freelancer %s joined Talent Cloud %s", contract.freelancer_id, cloud)
        if document is not None:
            await self.store.members_outbox.flush(document, self.publish)

    async def handle_log_time(self, command: LogTime) -> None:
        if await self.refusals.already_refused(command.command_id):
            return
        await self._wait_for_contract(command.contract_id)
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                async with self.contracts.writing(command.contract_id):
                    await self._try_log_time(command)
                return
            except Conflict:
                continue
        raise RuntimeError(
            f"contract {command.contract_id}: {MAX_CONFLICT_RETRIES} conflicting writes in a "
            f"row while handling LogTime {command.command_id}; will retry on redelivery"
        )

    async def _wait_for_contract(self, contract_id: str) -> None:
        """A contract is activated from OfferAccepted, a moment after the acceptance: a
        LogTime sent right away may overtake it, so wait a bounded time before refusing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.unknown_contract_wait
        while loop.time() < deadline:
            if await self.store.get_contract(contract_id) is not None:
                return
            await asyncio.sleep(0.1)

    async def _try_log_time(self, command: LogTime) -> None:
        stored = await self.store.get_contract(command.contract_id)
        if stored is None:
            await self.refusals.refuse(
                command,
                Rejection(
                    RejectionCode.UNKNOWN_CONTRACT,
                    f"there is no contract {command.contract_id!r}",
                ),
            )
            return
        if command.command_id in stored.handled or command.entry_id in stored.handled:
            log.info("LogTime %s (entry %s) already handled", command.command_id, command.entry_id)
            await self.store.contracts_outbox.flush(stored.document, self.publish)
            return
        await self.store.contracts_outbox.flush(stored.document, self.publish)
        now = self.clock()
        outcome = contract_rules.log_time(stored.value, command, now=now)
        if isinstance(outcome, Rejection):
            await self.refusals.refuse(command, outcome)
            return
        contract, logged = outcome
        entry = OutboxEntry.of(logged, topic=topics.CONTRACTS_EVENTS, key=contract.contract_id)
        document = await self.store.update_contract(
            contract,
            stored,
            [command.command_id, command.entry_id],
            {
                "entry_id": command.entry_id,
                "work_date": command.work_date.isoformat(),
                "hours": f"{command.hours:f}",
                "memo": command.memo,
                "logged_at": now,
            },
            [entry],
            now,
        )
        await self.store.contracts_outbox.flush(document, self.publish)
