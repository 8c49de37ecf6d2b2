"""Who may read what, from outside: the three services and the gateway over real HTTP, on
the real Kafka and database. A client extends an offer through the gateway, they talk, the
freelancer accepts; then every resource is read as each party, as a stranger and as nobody.

- a party gets 200; a stranger gets exactly what an unknown id gets (404); nobody gets 401;
- a list or inbox whose filter names another party is refused (403), from the query alone;
- a command's outcome is its actor's only: to anyone else it is "pending", as an unknown
  command's is;
- each service refuses a read without an actor itself, not only the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.gateway.app import create_app as gateway_app
from services.gateway.settings import GatewaySettings
from services.messaging_service.app import create_app as messaging_app
from services.notification_service.app import create_app as notification_app
from services.offer_service.app import create_app as offer_app
from tests.conftest import fresh_settings
from tests.infrastructure import Endpoints
from tests.kit import Parties, as_, command, hourly_terms, new_id

from .sse import Served, served
from .test_gateway_proxy import serving

pytestmark = pytest.mark.integration


@dataclass
class System:
    gateway: httpx.AsyncClient
    offers: Served
    messaging: Served
    notifications: Served


@pytest.fixture(scope="module")
async def system(infra: Endpoints) -> AsyncIterator[System]:
    async with AsyncExitStack() as stack:
        offers = await stack.enter_async_context(
            served(offer_app(await fresh_settings(infra, "offer_service")))
        )
        messaging = await stack.enter_async_context(
            served(messaging_app(await fresh_settings(infra, "messaging_service")))
        )
        notifications = await stack.enter_async_context(
            served(notification_app(await fresh_settings(infra, "notification_service")))
        )
        settings = GatewaySettings(
            kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
            offer_service_url=offers.url,
            messaging_service_url=messaging.url,
            notification_service_url=notifications.url,
            page_actor=False,  # as behind the authenticating proxy
        )
        url = await stack.enter_async_context(serving(gateway_app(settings)))
        gateway = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
        await eventually("the gateway is healthy", lambda: gateway.get("/health"))
        yield System(gateway, offers, messaging, notifications)


async def eventually(
    what: str,
    read: Callable[[], Awaitable[httpx.Response]],
    done: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
) -> httpx.Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        response = await read()
        if done(response):
            return response
        assert loop.time() < deadline, f"{what}: still {response.status_code} {response.text}"
        await asyncio.sleep(0.2)


async def sent(gateway: httpx.AsyncClient, actor: str, body: dict[str, Any]) -> dict[str, Any]:
    """The command sent through the gateway, and its outcome as its actor sees it."""
    response = await gateway.post("/commands", json=body, headers=as_(actor))
    assert response.status_code == 202, response.text
    command_id = response.json()["command_id"]
    outcome = await gateway.get(f"/commands/{command_id}?wait=15", headers=as_(actor))
    answer: dict[str, Any] = outcome.json()
    assert answer["status"] == "done", answer
    return answer


@dataclass
class Negotiated:
    parties: Parties
    cloud: str
    contract_id: str
    extend_id: str


@pytest.fixture(scope="module")
async def negotiated(system: System) -> Negotiated:
    gateway = system.gateway
    parties, cloud = Parties(), new_id("tc")
    extend = parties.extend(hourly_terms(talent_cloud_id=cloud))
    await sent(gateway, parties.client_id, extend)
    thread = f"/api/threads/{parties.offer_id}/messages"
    await eventually(
        "the thread opens", lambda: gateway.get(thread, headers=as_(parties.client_id))
    )
    post = command(
        "PostMessage",
        parties.client_id,
        offer_id=parties.offer_id,
        message_id=str(uuid.uuid4()),
        text="Our rate card is attached.",
    )
    await sent(gateway, parties.client_id, post)
    offer = f"/api/offers/{parties.offer_id}"
    await eventually("the offer", lambda: gateway.get(offer, headers=as_(parties.freelancer_id)))
    accept = command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=1)
    await sent(gateway, parties.freelancer_id, accept)
    mine = as_(parties.freelancer_id)
    contracts = await eventually(
        "the contract",
        lambda: gateway.get(
            "/api/contracts", params={"freelancer_id": parties.freelancer_id}, headers=mine
        ),
        lambda r: r.status_code == 200 and bool(r.json()["items"]),
    )
    members = f"/api/talent-clouds/{cloud}/members"
    await eventually("the membership", lambda: gateway.get(members, headers=mine))
    return Negotiated(
        parties, cloud, contracts.json()["items"][0]["contract_id"], extend["command_id"]
    )


def unknown(what: str, ident: str) -> dict[str, Any]:
    """What an unknown id gets: a stranger must get exactly this."""
    return {"error": "not_found", "message": f"no {what} with id {ident!r}", "errors": []}


async def status_of(gateway: httpx.AsyncClient, path: str, headers: dict[str, str]) -> int:
    """The status a (possibly streaming) read answers with; a stream is closed at once."""
    async with gateway.stream("GET", path, headers=headers) as response:
        return response.status_code


async def test_each_resource_is_shown_to_its_parties_only(
    system: System, negotiated: Negotiated
) -> None:
    parties, gateway = negotiated.parties, system.gateway
    client, freelancer = parties.client_id, parties.freelancer_id
    stranger = new_id("x")
    offer, contract = parties.offer_id, negotiated.contract_id
    single = {
        f"/api/offers/{offer}": ("offer", offer),
        f"/api/contracts/{contract}": ("contract", contract),
        f"/api/threads/{offer}/messages": ("thread for offer", offer),
        f"/api/threads/{offer}/stream": ("thread for offer", offer),
    }
    for path, (what, ident) in single.items():
        for party in (client, freelancer):
            assert await status_of(gateway, path, as_(party)) == 200, (path, party)
        refused = await gateway.get(path, headers=as_(stranger))
        assert (refused.status_code, refused.json()) == (404, unknown(what, ident)), path
        nobody = await gateway.get(path)
        assert (nobody.status_code, nobody.json()["error"]) == (401, "unauthenticated"), path
    lists = {
        "/api/offers": ("client_id", client),
        "/api/contracts": ("freelancer_id", freelancer),
        "/api/notifications": ("recipient_id", freelancer),
        "/api/notifications/stream": ("recipient_id", freelancer),
    }
    for path, (name, owner) in lists.items():
        assert await status_of(gateway, f"{path}?{name}={owner}", as_(owner)) == 200, path
        refused = await gateway.get(path, params={name: owner}, headers=as_(stranger))
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden"), path
        assert f"{name}={stranger}" in refused.json()["message"]
        nobody = await gateway.get(path, params={name: owner})
        assert nobody.status_code == 401, path
    # The stranger's own lists are theirs, and empty.
    own = await gateway.get("/api/offers", params={"client_id": stranger}, headers=as_(stranger))
    assert (own.status_code, own.json()["items"]) == (200, [])
    # Each party's lists hold the offer and the contract.
    for party, name in ((client, "client_id"), (freelancer, "freelancer_id")):
        listed = await gateway.get("/api/offers", params={name: party}, headers=as_(party))
        assert [o["offer_id"] for o in listed.json()["items"]] == [offer]


async def test_the_owner_reads_the_members_a_member_their_own_a_stranger_no_cloud(
    system: System, negotiated: Negotiated
) -> None:
    gateway, cloud = system.gateway, negotiated.cloud
    path = f"/api/talent-clouds/{cloud}/members"
    freelancer = negotiated.parties.freelancer_id
    mine = await gateway.get(path, headers=as_(freelancer))
    assert [m["freelancer_id"] for m in mine.json()["items"]] == [freelancer]
    # The client whose offer first named the cloud owns it, and reads every member.
    owned = await gateway.get(path, headers=as_(negotiated.parties.client_id))
    assert [m["freelancer_id"] for m in owned.json()["items"]] == [freelancer]
    refused = await gateway.get(path, headers=as_(new_id("x")))
    assert (refused.status_code, refused.json()["error"]) == (404, "not_found")
    never = await gateway.get(f"/api/talent-clouds/{new_id('tc')}/members", headers=as_("x"))
    assert never.status_code == 404
    assert (await gateway.get(path)).status_code == 401


async def test_a_command_outcome_is_shown_to_its_actor_only(
    system: System, negotiated: Negotiated
) -> None:
    gateway, parties = system.gateway, negotiated.parties
    path = f"/commands/{negotiated.extend_id}"
    mine = (await gateway.get(path, headers=as_(parties.client_id))).json()
    assert mine["status"] == "done" and mine["event"]["type"] == "OfferExtended"
    for other in (parties.freelancer_id, new_id("x")):
        theirs = (await gateway.get(path, headers=as_(other))).json()
        assert theirs == {"command_id": negotiated.extend_id, "status": "pending"}
    never = (await gateway.get(f"/commands/{uuid.uuid4()}", headers=as_("x"))).json()
    assert never["status"] == "pending"
    assert (await gateway.get(path)).status_code == 401
    # A refusal too: the freelancer's second acceptance, refused, is theirs alone.
    again = command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=1)
    response = await gateway.post("/commands", json=again, headers=as_(parties.freelancer_id))
    refused = await gateway.get(
        f"/commands/{again['command_id']}?wait=15", headers=as_(parties.freelancer_id)
    )
    assert response.status_code == 202 and refused.json()["status"] == "rejected"
    hidden = await gateway.get(f"/commands/{again['command_id']}", headers=as_(parties.client_id))
    assert hidden.json()["status"] == "pending"


async def test_each_service_refuses_a_read_without_an_actor_itself(
    system: System, negotiated: Negotiated
) -> None:
    """The second line: a caller that reaches a read API past the gateway."""
    parties = negotiated.parties
    reads = [
        (system.offers, f"/offers/{parties.offer_id}"),
        (system.offers, f"/contracts/{negotiated.contract_id}"),
        (system.offers, f"/offers?client_id={parties.client_id}"),
        (system.offers, f"/talent-clouds/{negotiated.cloud}/members"),
        (system.messaging, f"/threads/{parties.offer_id}/messages"),
        (system.messaging, f"/threads/{parties.offer_id}/stream"),
        (system.notifications, f"/notifications?recipient_id={parties.client_id}"),
        (system.notifications, f"/notifications/stream?recipient_id={parties.client_id}"),
    ]
    for service, path in reads:
        response = await service.client.get(path)
        assert (response.status_code, response.json()["error"]) == (401, "unauthenticated")
        assert "X-Actor-Id" in response.json()["message"]
        stranger = await service.client.get(path, headers=as_(new_id("x")))
        assert stranger.status_code in (403, 404), path


async def test_malformed_parameters_are_a_400_with_the_reason_through_the_gateway(
    system: System, negotiated: Negotiated
) -> None:
    gateway, client = system.gateway, negotiated.parties.client_id
    me = as_(client)
    deep_cursor = base64.urlsafe_b64encode(b"[" * 30_000).decode()
    headers: Any  # one of them is bytes: a header that is not ASCII
    for path, params, headers in (
        ("/api/offers", {"client_id": client, "limit": "²"}, me),
        ("/api/offers", {"client_id": client, "cursor": deep_cursor}, me),
        ("/api/notifications", {"recipient_id": client, "unread_only": "²"}, me),
        (f"/api/threads/{negotiated.parties.offer_id}/messages", {"limit": "٣x"}, me),
        (f"/api/threads/{negotiated.parties.offer_id}/stream", {}, me | {"Last-Event-ID": "2x"}),
        (f"/api/threads/{negotiated.parties.offer_id}/stream", {}, me | {"Last-Event-ID": b"\xb2"}),
    ):
        response = await gateway.get(path, params=params, headers=headers)
        assert response.status_code == 400, (path, params, response.text)
        assert response.json()["error"] == "bad_request" and response.json()["message"]
    # Ids no store can hold (a NUL, a huge number) are unknown ids, or a 400: never a 500.
    huge = base64.urlsafe_b64encode(b"[100000000000000000000000000000]").decode()
    nul = base64.urlsafe_b64encode(b'["2026-12-01T00:00:00+00:00", "a\\u0000b"]').decode()
    for path, params in (
        ("/api/offers/a%00b", {}),
        ("/api/contracts/a%00b", {}),
        ("/api/threads/a%00b/messages", {}),
        ("/api/threads/a%00b/stream", {}),
        ("/api/talent-clouds/a%00b/members", {}),
        (f"/api/offers/{'x' * 5000}", {}),
        ("/api/offers", {"client_id": client, "job_id": "a\x00b"}),
        (f"/api/threads/{negotiated.parties.offer_id}/messages", {"before": huge}),
        ("/api/offers", {"client_id": client, "cursor": nul}),
        ("/api/notifications", {"recipient_id": client, "cursor": nul}),
    ):
        response = await gateway.get(path, params=params, headers=me)
        assert response.status_code in (400, 404), (path, params, response.text)
