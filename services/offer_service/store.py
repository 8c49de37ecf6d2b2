"""offer_service's documents: one aggregate per document, read and written through the
unit of work (services.runtime.uow), which puts each write's events in the same
document's outbox."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import date
from decimal import Decimal
from types import MappingProxyType

from pydantic import TypeAdapter

from contracts import OfferTerms
from services.rules import OfferStatus, derived_id
from services.runtime.documents import Document, Documents, MemoryDocuments
from services.runtime.due import FIELD as DUE_BUCKET
from services.runtime.due import due_bucket
from services.runtime.uow import Repository

from .domain.contract import Contract, Membership, TimeEntry, hours_by_week, member_id_for
from .domain.offer import Offer, OfferVersion

TERMS: TypeAdapter[OfferTerms] = TypeAdapter(OfferTerms)


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


def time_entry_id(contract_id: str, entry_id: str) -> str:
    return derived_id("time-entry", contract_id, entry_id)


def time_entry_to_document(entry: TimeEntry) -> Document:
    return {
        "contract_id": entry.contract_id,
        "entry_id": entry.entry_id,
        "work_date": entry.work_date.isoformat(),
        "hours": f"{entry.hours:f}",
        "memo": entry.memo,
        "logged_at": entry.logged_at,
    }


def time_entry_from_document(document: Document) -> TimeEntry:
    return TimeEntry(
        document["contract_id"],
        document["entry_id"],
        date.fromisoformat(document["work_date"]),
        Decimal(document["hours"]),
        document.get("memo"),
        document["logged_at"],
    )


def _legacy_entries(document: Document) -> list[TimeEntry]:
    # Contracts written before entries had documents of their own kept them in a list.
    return [
        time_entry_from_document({"contract_id": document["contract_id"], **entry})
        for entry in document.get("time_entries", ())
    ]


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
        hours_by_week=(
            MappingProxyType({w: Decimal(h) for w, h in document["hours_by_week"].items()})
            if "hours_by_week" in document
            else hours_by_week(_legacy_entries(document))
        ),
    )


def member_to_document(member: Membership) -> Document:
    return asdict(member)  # its fields, as they were stored before it was an aggregate


def member_from_document(document: Document) -> Membership:
    return Membership(*(document[field.name] for field in fields(Membership)))


class OfferStore:
    """Offers, contracts with their time entries, and Talent Cloud memberships. Each is
    written only by the handler of its own partition: an offer by its offer_id's, a contract
    and its entries by its contract_id's, a membership by its Talent Cloud's
    (services.runtime.service)."""

    def __init__(
        self, offers: Documents, contracts: Documents, members: Documents, time_entries: Documents
    ) -> None:
        self.offers = Repository(
            offers,
            to_document=offer_to_document,
            from_document=offer_from_document,
            id_of=lambda offer: offer.offer_id,
        )
        self.contracts = Repository(
            contracts,
            to_document=contract_to_document,
            from_document=contract_from_document,
            id_of=lambda contract: contract.contract_id,
        )
        self.members = Repository(
            members,
            to_document=member_to_document,
            from_document=member_from_document,
            id_of=lambda member: member_id_for(member.talent_cloud_id, member.freelancer_id),
        )
        self.time_entries = Repository(
            time_entries,
            to_document=time_entry_to_document,
            from_document=time_entry_from_document,
            id_of=lambda entry: time_entry_id(entry.contract_id, entry.entry_id),
        )

    @classmethod
    def in_memory(cls) -> OfferStore:
        return cls(
            MemoryDocuments("offers"),
            MemoryDocuments("contracts"),
            MemoryDocuments("talent_cloud_members"),
            MemoryDocuments("time_entries"),
        )

    async def ensure_indexes(self) -> None:
        await self.offers.ensure_indexes()
        await self.contracts.ensure_indexes()
        await self.members.ensure_indexes()
        await self.time_entries.ensure_indexes()
        # Each "Pending Offers" / "Contracts" list the read API serves.
        for party in ("client_id", "freelancer_id", "job_id"):
            await self.offers.documents.ensure_index(party, "created_at", "_id")
        for party in ("client_id", "freelancer_id"):
            await self.contracts.documents.ensure_index(party, "activated_at", "_id")
        await self.members.documents.ensure_index("talent_cloud_id", "joined_at", "_id")
        await self.time_entries.documents.ensure_index("contract_id", "logged_at", "_id")
