"""offer_service's read API (SPEC §6): offers, contracts and Talent Cloud members."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts import format_utc
from services.rules import OfferStatus
from services.runtime.documents import Document
from services.runtime.http import BadRequest, id_filter, not_found, own_list, reader
from services.runtime.openapi import (
    Json,
    json_read,
    page_parameters,
    path_parameter,
    query_parameter,
)
from services.runtime.pages import page

from .store import contract_from_document


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value)


def render_offer(document: Document) -> dict[str, Any]:
    return {
        "offer_id": document["offer_id"],
        "status": document["status"],
        "version": document["version"],
        "job_id": document["job_id"],
        "proposal_id": document["proposal_id"],
        "client_id": document["client_id"],
        "freelancer_id": document["freelancer_id"],
        "terms": document["versions"][-1]["terms"],
        "message": document["versions"][-1].get("message"),
        "expires_at": _time(document["expires_at"]),
        "created_at": _time(document["created_at"]),
        "updated_at": _time(document["updated_at"]),
        "closed_at": _time(document.get("closed_at")),
        "close_reason": document.get("close_reason"),
        "versions": [
            {
                "version": v["version"],
                "terms": v["terms"],
                "sent_at": _time(v["sent_at"]),
                "message": v.get("message"),
                "in_response_to": v.get("in_response_to"),
            }
            for v in document["versions"]
        ],
    }


def render_contract(document: Document) -> dict[str, Any]:
    return {
        "contract_id": document["contract_id"],
        "offer_id": document["offer_id"],
        "offer_version": document["offer_version"],
        "job_id": document["job_id"],
        "client_id": document["client_id"],
        "freelancer_id": document["freelancer_id"],
        "status": document["status"],
        "terms": document["terms"],
        "activated_at": _time(document["activated_at"]),
        "hours_by_week": {
            week: f"{hours:f}"
            for week, hours in contract_from_document(document).hours_by_week.items()
        },
    }


def render_time_entry(document: Document) -> dict[str, Any]:
    fields = ("entry_id", "work_date", "hours", "memo")
    return {
        **{name: document.get(name) for name in fields},
        "logged_at": _time(document["logged_at"]),
    }


# A contract shows its first entries; the rest are paged at /contracts/{id}/time-entries.
FIRST_ENTRIES = 100


def render_member(document: Document) -> dict[str, Any]:
    return {
        "talent_cloud_id": document["talent_cloud_id"],
        "freelancer_id": document["freelancer_id"],
        "contract_id": document["contract_id"],
        "joined_at": _time(document["joined_at"]),
    }


def _party_filters(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    """A list is one party's or one job's view ("Pending Offers", "My Jobs → Contracts"), so
    its query is an equality that an index serves; a list of everything would be a full scan
    and sort on every backend, and is refused."""
    filters = {name: value for name in names if (value := id_filter(request, name))}
    if not filters:
        raise BadRequest(f"name whose list this is: give {' and/or '.join(names)}")
    return filters


def _party(document: Document | None, actor: str) -> Document | None:
    """The document if the actor is one of its two parties; a stranger is told what an
    unknown id gets, so a read does not reveal what exists."""
    if document is None or actor not in (document["client_id"], document["freelancer_id"]):
        return None
    return document


def read_routes(
    offers: AsyncCollection[Document],
    contracts: AsyncCollection[Document],
    members: AsyncCollection[Document],
    time_entries: AsyncCollection[Document],
    clouds: AsyncCollection[Document],
) -> list[Route]:
    async def get_offer(request: Request) -> Response:
        actor = reader(request)
        offer_id = request.path_params["offer_id"]
        document = _party(await offers.find_one({"_id": offer_id}), actor)
        if document is None:
            return not_found("offer", offer_id)
        return JSONResponse(render_offer(document))

    async def list_offers(request: Request) -> Response:
        own_list(request, reader(request), ("client_id", "freelancer_id"))
        query: dict[str, Any] = _party_filters(request, ("client_id", "freelancer_id", "job_id"))
        status = request.query_params.get("status")
        if status:
            if status not in {s.value for s in OfferStatus}:
                allowed = ", ".join(s.value for s in OfferStatus)
                raise BadRequest(f"status must be one of {allowed}")
            query["status"] = status
        return await page(request, offers, query, order_field="created_at", render=render_offer)

    async def get_contract(request: Request) -> Response:
        actor = reader(request)
        contract_id = request.path_params["contract_id"]
        document = _party(await contracts.find_one({"_id": contract_id}), actor)
        if document is None:
            return not_found("contract", contract_id)
        # Kept in the contract before entries had documents of their own.
        legacy = document.get("time_entries", [])
        first = time_entries.find(
            {"contract_id": contract_id},
            sort=[("logged_at", ASCENDING), ("_id", ASCENDING)],
            limit=FIRST_ENTRIES + 1,
        )
        entries = [*legacy, *[entry async for entry in first]]
        return JSONResponse(
            {
                **render_contract(document),
                "time_entries": [render_time_entry(e) for e in entries[:FIRST_ENTRIES]],
                "more_time_entries": len(entries) > FIRST_ENTRIES,
            }
        )

    async def list_time_entries(request: Request) -> Response:
        actor = reader(request)
        contract_id = request.path_params["contract_id"]
        if _party(await contracts.find_one({"_id": contract_id}), actor) is None:
            return not_found("contract", contract_id)
        return await page(
            request,
            time_entries,
            {"contract_id": contract_id},
            order_field="logged_at",
            render=render_time_entry,
            newest_first=False,
        )

    async def list_contracts(request: Request) -> Response:
        own_list(request, reader(request), ("client_id", "freelancer_id"))
        query = _party_filters(request, ("client_id", "freelancer_id"))
        return await page(
            request, contracts, query, order_field="activated_at", render=render_contract
        )

    async def list_members(request: Request) -> Response:
        actor = reader(request)
        cloud = request.path_params["talent_cloud_id"]
        # Its owner reads every member; a member their own membership; to anyone else the
        # cloud is unknown.
        query: dict[str, Any] = {"talent_cloud_id": cloud}
        owned = await clouds.find_one({"_id": cloud, "owner_id": actor})
        if owned is None:
            query["freelancer_id"] = actor
            if await members.find_one(query) is None:
                return not_found("Talent Cloud", cloud)
        return await page(
            request,
            members,
            query,
            order_field="joined_at",
            render=render_member,
            newest_first=False,
        )

    return [
        Route("/offers", list_offers),
        Route("/offers/{offer_id}", get_offer),
        Route("/contracts", list_contracts),
        Route("/contracts/{contract_id}", get_contract),
        Route("/contracts/{contract_id}/time-entries", list_time_entries),
        Route("/talent-clouds/{talent_cloud_id}/members", list_members),
    ]


_PAGE = page_parameters()

OPENAPI_PATHS: Json = {
    "/offers": json_read(
        "\"Pending Offers\": one party's or one job's offers, newest first",
        [
            query_parameter("client_id", "the client's offers"),
            query_parameter("freelancer_id", "the freelancer's offers"),
            query_parameter("job_id", "the job's offers (one of the three is required)"),
            query_parameter("status", "only offers in this status"),
            *_PAGE,
        ],
    ),
    "/offers/{offer_id}": json_read(
        "an offer: its current state and every version's terms",
        [path_parameter("offer_id", "the offer")],
        single=True,
    ),
    "/contracts": json_read(
        '"My Jobs → Contracts": one party\'s contracts, newest first',
        [
            query_parameter("client_id", "the client's contracts"),
            query_parameter("freelancer_id", "the freelancer's (one of the two is required)"),
            *_PAGE,
        ],
    ),
    "/contracts/{contract_id}": json_read(
        "a contract, its hours by week and its first 100 time entries",
        [path_parameter("contract_id", "the contract")],
        single=True,
    ),
    "/contracts/{contract_id}/time-entries": json_read(
        "a contract's time entries, oldest first, to its parties",
        [path_parameter("contract_id", "the contract"), *_PAGE],
        own_list=False,
    ),
    "/talent-clouds/{talent_cloud_id}/members": json_read(
        "a Talent Cloud's members, oldest first: all of them to its owner, their own "
        "membership to a member",
        [path_parameter("talent_cloud_id", "the Talent Cloud"), *_PAGE],
        own_list=False,
    ),
}
