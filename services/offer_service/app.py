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
from services.runtime.service import Kind, On, ServiceTable, handles, internal_on

from .clouds import TalentClouds
from .domain.offer import Policy
from .handlers import OfferHandlers
from .read_api import OPENAPI_PATHS, read_routes
from .store import OfferStore

NAME = "offer_service"
HTTP_PORT = 8001

TABLE = ServiceTable(
    NAME,
    HTTP_PORT,
    consumes=(
        On(
            topics.OFFERS_COMMANDS,
            OFFER_COMMAND_ADAPTER,
            Kind.COMMAND,
            (
                handles(ExtendOffer, OfferHandlers.extend, creates=True),
                handles(ChangeOffer, OfferHandlers.change),
                handles(WithdrawOffer, OfferHandlers.withdraw),
                handles(AcceptOffer, OfferHandlers.accept),
                handles(DeclineOffer, OfferHandlers.decline),
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
            handles(ExpireOffer, OfferHandlers.expire),
            handles(ActivateContract, OfferHandlers.activate_contract, creates=True),
            handles(JoinTalentCloud, OfferHandlers.join_talent_cloud),
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
        clouds=TalentClouds(kit.documents("talent_clouds")),
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
        outboxes=(store.offers.documents, store.contracts.documents, store.members),
        background=(kit.asking_sweep(expiry, expire, "expiry sweep"),),
        openapi_paths=OPENAPI_PATHS,
    )


def create_app(settings: Settings | None = None) -> Starlette:
    return service_app(TABLE, settings or Settings.from_env(NAME, HTTP_PORT), build)
