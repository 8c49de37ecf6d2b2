"""offer_service, declared: what it reads, what it writes, its expiry sweep and its read API."""

from __future__ import annotations

from datetime import datetime, timedelta

from starlette.applications import Starlette

from contracts import (
    CONTRACT_COMMAND_ADAPTER,
    OFFER_COMMAND_ADAPTER,
    AcceptOffer,
    ChangeOffer,
    DeclineOffer,
    ExtendOffer,
    LogTime,
    WithdrawOffer,
    topics,
)
from contracts.internal import ActivateContract, ExpireOffer, JoinTalentCloud, RecordTimeEntry
from services.rules import derived_id
from services.runtime.app import Built, Kit, service_app
from services.runtime.clock import utc_now
from services.runtime.config import Settings
from services.runtime.documents import Document, Documents
from services.runtime.due import DueBuckets
from services.runtime.service import Kind, On, ServiceTable, decides, internal_on
from services.runtime.uow import Repository

from .clouds import TalentClouds
from .domain.contract import Contract, Membership, TimeEntry, member_id_for
from .domain.offer import Offer, Policy
from .handlers import OfferHandlers
from .read_api import OPENAPI_PATHS, read_routes
from .store import OfferStore, time_entry_id

NAME = "offer_service"
HTTP_PORT = 8001


def offers(handlers: OfferHandlers) -> Repository[Offer]:
    return handlers.store.offers


def contracts(handlers: OfferHandlers) -> Repository[Contract]:
    return handlers.store.contracts


def members(handlers: OfferHandlers) -> Repository[Membership]:
    return handlers.store.members


def time_entries(handlers: OfferHandlers) -> Repository[TimeEntry]:
    return handlers.store.time_entries


def time_entries_stored(handlers: OfferHandlers) -> Documents:
    return handlers.store.time_entries.documents


def time_entry_of(command: LogTime | RecordTimeEntry) -> str:
    """A time entry's own id: one of many on its contract's partition."""
    return time_entry_id(command.contract_id, command.entry_id)


def counted_entry(command: LogTime) -> str:
    """What a contract remembers of the entry it counted: the producer's entry_id, which a
    new command may repeat (a `/` is in no id, so it meets no command id)."""
    return f"time-entry/{command.entry_id}"


def membership_of(command: JoinTalentCloud) -> str:
    """A membership is one of many on its cloud's partition: its own id, not the key."""
    return member_id_for(command.talent_cloud_id, command.freelancer_id)


TABLE = ServiceTable(
    NAME,
    HTTP_PORT,
    consumes=(
        On(
            topics.OFFERS_COMMANDS,
            OFFER_COMMAND_ADAPTER,
            Kind.COMMAND,
            (
                decides(
                    ExtendOffer,
                    OfferHandlers.extend,
                    state=offers,
                    creates=True,
                    confirm=OfferHandlers.vet_cloud,
                ),
                decides(
                    ChangeOffer, OfferHandlers.change, state=offers, confirm=OfferHandlers.vet_cloud
                ),
                decides(WithdrawOffer, OfferHandlers.withdraw, state=offers),
                decides(AcceptOffer, OfferHandlers.accept, state=offers),
                decides(DeclineOffer, OfferHandlers.decline, state=offers),
            ),
        ),
        On(
            topics.CONTRACTS_COMMANDS,
            CONTRACT_COMMAND_ADAPTER,
            Kind.COMMAND,
            (
                decides(
                    LogTime,
                    OfferHandlers.log_time,
                    state=contracts,
                    remembers=counted_entry,
                    once=time_entries_stored,
                    once_id=time_entry_of,
                ),
            ),
        ),
        internal_on(
            NAME,
            decides(ExpireOffer, OfferHandlers.expire, state=offers, seen=True),
            decides(
                ActivateContract, OfferHandlers.activate_contract, state=contracts, creates=True
            ),
            decides(
                JoinTalentCloud, OfferHandlers.join_talent_cloud, state=members, key=membership_of
            ),
            decides(
                RecordTimeEntry,
                OfferHandlers.record_time_entry,
                state=time_entries,
                key=time_entry_of,
                remembers=None,  # an entry stored tells a repeat
            ),
            # A contract's activation: the time logged on it meanwhile goes on.
            releases=lambda command: command.key,
        ),
    ),
    publishes=(
        topics.OFFERS_EVENTS,
        topics.CONTRACTS_EVENTS,
        topics.TALENT_CLOUDS_EVENTS,
        topics.COMMANDS_REJECTED,
        topics.COMMANDS_DEAD_LETTER,
    ),
)


def build(kit: Kit) -> Built:
    store = OfferStore(
        kit.documents("offers"),
        kit.documents("contracts"),
        kit.documents("talent_cloud_members"),
        kit.documents("time_entries", kept=False),
    )
    handlers = OfferHandlers(
        store,
        kit.uow,
        kit.refusals,
        policy=Policy(
            offer_ttl=timedelta(seconds=kit.settings.offer_ttl_seconds),
            max_contract_days=kit.settings.max_contract_days,
            max_versions=kit.settings.max_offer_versions,
        ),
        # A cloud is claimed by the first offer naming it, from any partition.
        clouds=TalentClouds(kit.documents("talent_clouds", shared=True)),
    )
    # Pending offers by the minute they expire in, read whole: an ExpireOffer takes its offer
    # as the sweep read it instead of reading it again (`seen` on its row).
    expiry = DueBuckets(
        kit.database["offers"],
        kit.database["sweeps"],
        "offer-expiry",
        fields=("expires_at",),
        ahead=timedelta(seconds=kit.settings.expiry_sweep_interval_seconds),
        seen=kit.seen_by_sweep("offers"),
    )

    def expire(offer: Document, now: datetime) -> ExpireOffer | None:
        if offer["expires_at"] > now:
            return None
        expires = offer["expires_at"].isoformat()
        return ExpireOffer(
            command_id=derived_id("expire", offer["_id"], expires), offer_id=offer["_id"]
        )

    async def prepare() -> None:
        await store.ensure_indexes()
        await expiry.ensure_ready(utc_now())

    return Built(
        handlers,
        read_routes(
            kit.database["offers"],
            kit.database["contracts"],
            kit.database["talent_cloud_members"],
            kit.database["time_entries"],
            kit.database["talent_clouds"],
        ),
        prepare,
        outboxes=(store.offers.documents, store.contracts.documents, store.members.documents),
        background=(kit.asking_sweep(expiry, expire, "expiry sweep"),),
        openapi_paths=OPENAPI_PATHS,
    )


def create_app(settings: Settings | None = None) -> Starlette:
    return service_app(TABLE, settings or Settings.from_env(NAME, HTTP_PORT), build)
