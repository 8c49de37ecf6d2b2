"""offer_service's MongoDB documents, behind small Protocols so handler tests can use fakes.

One aggregate is one document; each write is one atomic, revision-conditioned update
that also fills the document's outbox (see services.runtime.outbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from pydantic import TypeAdapter
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from contracts import OfferTerms
from services.runtime.clock import utc_now
from services.runtime.due import FIELD as DUE_BUCKET
from services.runtime.due import DueBuckets, due_bucket
from services.runtime.outbox import MongoOutbox, OutboxEntry, outbox_fields
from services.runtime.ownership import Ownership

from .domain.contract import Contract
from .domain.offer import Offer, OfferStatus, OfferVersion

Document = dict[str, Any]
TERMS: TypeAdapter[OfferTerms] = TypeAdapter(OfferTerms)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Stored(Generic[T]):
    """An aggregate as read, with what a conditional write and dedupe need."""

    value: T
    revision: int
    handled: frozenset[str]
    document: Document


class Conflict(Exception):
    """Somebody else wrote the document since it was read; read again and decide again."""


class AlreadyExists(Exception):
    pass


# --- documents <-> domain ---------------------------------------------------------------------


def offer_to_document(offer: Offer) -> Document:
    return {
        "offer_id": offer.offer_id,
        "job_id": offer.job_id,
        "proposal_id": offer.proposal_id,
        "client_id": offer.client_id,
        "freelancer_id": offer.freelancer_id,
        "status": str(offer.status),
        "version": offer.version,
        "expires_at": offer.expires_at,
        # Found by the expiry sweep while pending (services.runtime.due).
        DUE_BUCKET: due_bucket(offer.expires_at) if offer.status is OfferStatus.PENDING else None,
        "closed_at": offer.closed_at,
        "close_reason": offer.close_reason,
        "versions": [
            {
                "version": v.version,
                "terms": v.terms.model_dump(mode="json"),
                "sent_at": v.sent_at,
                "message": v.message,
                "in_response_to": v.in_response_to,
            }
            for v in offer.versions
        ],
    }


def offer_from_document(document: Document) -> Offer:
    return Offer(
        offer_id=document["offer_id"],
        job_id=document["job_id"],
        proposal_id=document["proposal_id"],
        client_id=document["client_id"],
        freelancer_id=document["freelancer_id"],
        status=OfferStatus(document["status"]),
        versions=tuple(
            OfferVersion(
                version=v["version"],
                terms=TERMS.validate_python(v["terms"]),
                sent_at=v["sent_at"],
                message=v.get("message"),
                in_response_to=v.get("in_response_to"),
            )
            for v in document["versions"]
        ),
        expires_at=document["expires_at"],
        closed_at=document.get("closed_at"),
        close_reason=document.get("close_reason"),
    )


def contract_to_document(contract: Contract) -> Document:
    return {
        "contract_id": contract.contract_id,
        "offer_id": contract.offer_id,
        "offer_version": contract.offer_version,
        "job_id": contract.job_id,
        "client_id": contract.client_id,
        "freelancer_id": contract.freelancer_id,
        "status": contract.status,
        "terms": contract.terms.model_dump(mode="json"),
        "activated_at": contract.activated_at,
        "hours_by_week": {week: f"{hours:f}" for week, hours in contract.hours_by_week.items()},
    }


def contract_from_document(document: Document) -> Contract:
    return Contract(
        contract_id=document["contract_id"],
        offer_id=document["offer_id"],
        offer_version=document["offer_version"],
        job_id=document["job_id"],
        client_id=document["client_id"],
        freelancer_id=document["freelancer_id"],
        terms=TERMS.validate_python(document["terms"]),
        activated_at=document["activated_at"],
        hours_by_week=MappingProxyType(
            {week: Decimal(hours) for week, hours in document.get("hours_by_week", {}).items()}
        ),
    )


def _stored(value: T, document: Document) -> Stored[T]:
    return Stored(value, document["revision"], frozenset(document.get("handled", ())), document)


# --- the store's surface --------------------------------------------------------------------


class OfferStore(Protocol):
    async def get_offer(self, offer_id: str) -> Stored[Offer] | None: ...

    async def create_offer(
        self, offer: Offer, handled: str, events: Sequence[OutboxEntry], now: datetime
    ) -> Document: ...

    async def update_offer(
        self,
        offer: Offer,
        expected: Stored[Offer],
        handled: str,
        events: Sequence[OutboxEntry],
        now: datetime,
    ) -> Document: ...


class MongoOfferStore:
    """Collections: offers, contracts, talent_cloud_members."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        *,
        offers_ownership: Ownership | None = None,
        contracts_ownership: Ownership | None = None,
    ) -> None:
        self.offers = database["offers"]
        self.contracts = database["contracts"]
        self.members = database["talent_cloud_members"]
        # Pending offers by the minute they expire in, for the expiry sweep.
        self.expiry = DueBuckets(
            self.offers, database["sweeps"], "offer-expiry", fields=("expires_at",)
        )
        # Offers and contracts change many times, so only their owner may write them; members
        # are written once and cleared once (services.runtime.ownership).
        self.offers_outbox = MongoOutbox(self.offers, offers_ownership)
        self.contracts_outbox = MongoOutbox(self.contracts, contracts_ownership)
        self.members_outbox = MongoOutbox(self.members)
        self.outboxes = (
            self.offers_outbox,
            self.contracts_outbox,
            self.members_outbox,
        )

    async def ensure_indexes(self) -> None:
        for outbox in self.outboxes:
            await outbox.ensure_indexes()
        await self.expiry.ensure_ready(utc_now())
        # Each "Pending Offers" / "Contracts" list the read API serves.
        for party in ("client_id", "freelancer_id", "job_id"):
            await self.offers.create_index(
                [(party, ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
            )
        await self.offers.create_index([("created_at", DESCENDING), ("_id", DESCENDING)])
        for party in ("client_id", "freelancer_id"):
            await self.contracts.create_index(
                [(party, ASCENDING), ("activated_at", DESCENDING), ("_id", DESCENDING)]
            )
        await self.contracts.create_index([("activated_at", DESCENDING), ("_id", DESCENDING)])
        await self.members.create_index(
            [("talent_cloud_id", ASCENDING), ("joined_at", ASCENDING), ("_id", ASCENDING)]
        )

    # offers

    async def get_offer(self, offer_id: str) -> Stored[Offer] | None:
        document = await self.offers.find_one({"_id": offer_id})
        return None if document is None else _stored(offer_from_document(document), document)

    async def create_offer(
        self, offer: Offer, handled: str, events: Sequence[OutboxEntry], now: datetime
    ) -> Document:
        document = {
            "_id": offer.offer_id,
            **offer_to_document(offer),
            "created_at": now,
            "updated_at": now,
            "revision": 1,
            "handled": [handled],
            **outbox_fields(events, now),
        }
        try:
            await self.offers.insert_one(document)
        except DuplicateKeyError:
            raise AlreadyExists(offer.offer_id) from None
        return document

    async def update_offer(
        self,
        offer: Offer,
        expected: Stored[Offer],
        handled: str,
        events: Sequence[OutboxEntry],
        now: datetime,
    ) -> Document:
        revision = expected.revision + 1
        document = await self.offers.find_one_and_update(
            {"_id": offer.offer_id, "revision": expected.revision},
            {
                "$set": {
                    **offer_to_document(offer),
                    "updated_at": now,
                    "revision": revision,
                    **outbox_fields(events, now),
                },
                "$push": {"handled": handled},
            },
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            raise Conflict(offer.offer_id)
        return document

    # contracts and memberships

    async def get_contract(self, contract_id: str) -> Stored[Contract] | None:
        document = await self.contracts.find_one({"_id": contract_id})
        return None if document is None else _stored(contract_from_document(document), document)

    async def create_contract(
        self, contract: Contract, events: Sequence[OutboxEntry], now: datetime
    ) -> Document | None:
        """Stores a new contract; None when the offer's contract already exists."""
        document = {
            "_id": contract.contract_id,
            **contract_to_document(contract),
            "revision": 1,
            "handled": [],
            "time_entries": [],
            **outbox_fields(events, now),
        }
        try:
            await self.contracts.insert_one(document)
        except DuplicateKeyError:
            return None
        return document

    async def update_contract(
        self,
        contract: Contract,
        expected: Stored[Contract],
        handled: Sequence[str],
        entry: Document,
        events: Sequence[OutboxEntry],
        now: datetime,
    ) -> Document:
        document = await self.contracts.find_one_and_update(
            {"_id": contract.contract_id, "revision": expected.revision},
            {
                "$set": {
                    **contract_to_document(contract),
                    "revision": expected.revision + 1,
                    **outbox_fields(events, now),
                },
                "$push": {"handled": {"$each": list(handled)}, "time_entries": entry},
            },
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            raise Conflict(contract.contract_id)
        return document

    async def add_member(
        self, member_id: str, fields: Document, event: OutboxEntry, now: datetime
    ) -> Document | None:
        """Stores a membership; None when the freelancer is already in the cloud."""
        document = {
            "_id": member_id,
            **fields,
            "joined_at": now,
            "revision": 1,
            **outbox_fields([event], now),
        }
        try:
            await self.members.insert_one(document)
        except DuplicateKeyError:
            return None
        return document
