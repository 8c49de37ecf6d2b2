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
from contracts.internal import ActivateContract, ExpireOffer, JoinTalentCloud
from services.rules import derived_id
from services.runtime.app import Built, Kit, service_app
from services.runtime.clock import utc_now
from services.runtime.config import Settings
from services.runtime.documents import Document
from services.runtime.due import DueBuckets
from services.runtime.service import Kind, On, ServiceTable, decides, handles, internal_on
from services.runtime.uow import Repository

from .clouds import TalentClouds
from .domain.contract import Contract, Membership, member_id_for
from .domain.offer import Offer, Policy
from .handlers import OfferHandlers
from .read_api import OPENAPI_PATHS, read_routes
from .store import OfferStore

NAME = "offer_service"
HTTP_PORT = 8001


def offers(handlers: OfferHandlers) -> Repository[Offer]:
    return handlers.store.offers


def contracts(handlers: OfferHandlers) -> Repository[Contract]:
    return handlers.store.contracts


def members(handlers: OfferHandlers) -> Repository[Membership]:
    return handlers.store.members


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
            (handles(LogTime, OfferHandlers.log_time),),
        ),
        internal_on(
            NAME,
            decides(ExpireOffer, OfferHandlers.expire, state=offers),
            decides(
                ActivateContract, OfferHandlers.activate_contract, state=contracts, creates=True
            ),
            decides(
                JoinTalentCloud, OfferHandlers.join_talent_cloud, state=members, key=membership_of
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
        kit.documents("time_entries"),
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
    # Pending offers by the minute they expire in.
    expiry = DueBuckets(
        kit.database["offers"],
        kit.database["sweeps"],
        "offer-expiry",
        fields=("expires_at",),
        ahead=timedelta(seconds=kit.settings.expiry_sweep_interval_seconds),
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
