"""The gateway's read proxy over real sockets: reads and errors passed through, and a
Server-Sent Events stream relayed item by item as the service sends it (never held back
until it ends), with the resume point forwarded. The upstream is a stand-in that speaks the
streams' contract, so the relay is checked on its own."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.infrastructure import Endpoints

pytestmark = pytest.mark.integration


class Upstream:
    """A messaging_service stand-in: one read, one stream whose items the test releases."""

    def __init__(self) -> None:
        self.release = asyncio.Queue[str]()
        self.seen_resume: list[str | None] = []
        self.seen_actors: list[str | None] = []
        self.seen_queries: list[str] = []
        self.open_streams = 0

    def app(self) -> Starlette:
        async def messages(request: Request) -> Response:
            offer_id = request.path_params["offer_id"]
            if offer_id == "missing":
                return JSONResponse({"error": "not_found", "message": "no thread"}, 404)
            return JSONResponse(
                {
                    "offer_id": offer_id,
                    "limit": request.query_params["limit"],
                    "actor": request.headers.get("x-actor-id"),
                }
            )

        async def stream(request: Request) -> Response:
            self.seen_resume.append(
                request.headers.get("last-event-id") or request.query_params.get("last_event_id")
            )
            self.seen_actors.append(request.headers.get("x-actor-id"))
            self.seen_queries.append(request.url.query)

            async def items() -> AsyncIterator[bytes]:
                self.open_streams += 1
                try:
                    yield b": heartbeat\n\n"
                    while True:
                        text = await self.release.get()
                        yield f"event: MessagePosted\nid: {text}\ndata: {{}}\n\n".encode()
                finally:
                    self.open_streams -= 1

            return StreamingResponse(items(), media_type="text/event-stream")

        return Starlette(
            routes=[
                Route("/threads/{offer_id}/messages", messages),
                Route("/threads/{offer_id}/stream", stream),
            ]
        )


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # up to 10 s
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "the server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    fake = Upstream()
    async with serving(fake.app()) as url:
        yield fake, url


@asynccontextmanager
async def a_gateway(
    infra: Endpoints, upstream: str, *, page_actor: bool, streams_per_actor: int = 8
) -> AsyncIterator[str]:
    settings = GatewaySettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        messaging_service_url=upstream,
        offer_service_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        page_actor=page_actor,
        streams_per_actor=streams_per_actor,
    )
    async with serving(create_app(settings)) as url:
        yield url


@pytest.fixture
async def gateway(infra: Endpoints, upstream: tuple[Upstream, str]) -> AsyncIterator[str]:
    async with a_gateway(infra, upstream[1], page_actor=True) as url:
        yield url


ME = {"X-Actor-Id": "c-1"}


async def test_reads_and_their_errors_pass_through(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway, headers=ME) as client:
        read = await client.get("/api/threads/o-1/messages?limit=5")
        assert read.status_code == 200
        assert read.json() == {"offer_id": "o-1", "limit": "5", "actor": "c-1"}
        missing = await client.get("/api/threads/missing/messages?limit=5")
        assert missing.status_code == 404
        assert missing.json() == {"error": "not_found", "message": "no thread"}
        down = await client.get("/api/offers/o-1")
        assert down.status_code == 502
        assert down.json()["message"].startswith("offer_service at http://127.0.0.1:")
        climbing = await client.get("/api/offers/%2E%2E/threads/o-1/messages")
        assert climbing.status_code == 404
        unknown = await client.get("/api/payments")
        assert unknown.status_code == 404
        assert "/api/offers" in unknown.json()["message"]


async def test_a_stream_is_relayed_item_by_item_with_its_resume_point(
    gateway: str, upstream: tuple[Upstream, str]
) -> None:
    fake, _ = upstream
    async with (
        httpx.AsyncClient(base_url=gateway, timeout=5) as client,
        client.stream(
            "GET", "/api/threads/o-1/stream", headers={"Last-Event-ID": "41", **ME}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        lines = response.aiter_lines()
        assert await anext(lines) == ": heartbeat"
        assert fake.open_streams == 1
        for cursor in ("42", "43"):
            await fake.release.put(cursor)  # the upstream sends one item; the page sees it now
            item = [await anext(lines) for _ in range(4)]
            assert item == ["", "event: MessagePosted", f"id: {cursor}", "data: {}"]
    assert fake.seen_resume == ["41"]
    assert fake.seen_actors == ["c-1"]
    # The browser went away: so does the gateway's connection to the service.
    for _ in range(100):
        if fake.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert fake.open_streams == 0, "the upstream stream outlived the browser's"


async def test_a_read_without_an_actor_is_refused_before_any_service_is_asked(
    gateway: str, upstream: tuple[Upstream, str]
) -> None:
    fake, _ = upstream
    async with httpx.AsyncClient(base_url=gateway, timeout=5) as client:
        for path in ("/api/threads/o-1/messages?limit=5", "/api/threads/o-1/stream"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert response.json()["error"] == "unauthenticated"
            assert "X-Actor-Id" in response.json()["message"]
        bad = await client.get("/api/threads/o-1/messages", headers={"X-Actor-Id": "a b"})
        assert bad.status_code == 401
    assert fake.seen_actors == []


async def stream_opened(gateway: str, path: str) -> int:
    async with (
        httpx.AsyncClient(base_url=gateway, timeout=5) as client,
        client.stream("GET", path) as response,
    ):
        return response.status_code


async def test_the_page_names_its_actor_for_a_stream_only_on_the_local_stand_in(
    infra: Endpoints, upstream: tuple[Upstream, str]
) -> None:
    """An EventSource cannot set X-Actor-Id: on the stand-in the page's `?actor_id=` becomes
    the header (and is not passed on); behind the proxy it is not taken at all."""
    fake, url = upstream
    async with a_gateway(infra, url, page_actor=True) as stand_in:
        assert await stream_opened(stand_in, "/api/threads/o-1/stream?actor_id=f-1&x=1") == 200
    assert fake.seen_actors == ["f-1"]
    assert fake.seen_queries == ["x=1"]
    async with (
        a_gateway(infra, url, page_actor=True) as stand_in,
        httpx.AsyncClient(base_url=stand_in, timeout=5) as client,
    ):
        # A read that is not a stream can set the header: it must.
        read = await client.get("/api/threads/o-1/messages?limit=1&actor_id=f-1")
        assert read.status_code == 401
    async with a_gateway(infra, url, page_actor=False) as behind_proxy:
        assert await stream_opened(behind_proxy, "/api/threads/o-1/stream?actor_id=f-1") == 401
    assert fake.seen_actors == ["f-1"]


async def test_an_actor_holds_at_most_its_share_of_streams(
    infra: Endpoints, upstream: tuple[Upstream, str]
) -> None:
    fake, url = upstream
    async with (
        a_gateway(infra, url, page_actor=False, streams_per_actor=2) as gateway,
        httpx.AsyncClient(base_url=gateway, timeout=5) as client,
    ):
        path = "/api/threads/o-1/stream"
        async with (
            client.stream("GET", path, headers=ME) as one,
            client.stream("GET", path, headers=ME) as two,
        ):
            assert (one.status_code, two.status_code) == (200, 200)
            third = await client.get(path, headers=ME)
            assert (third.status_code, third.json()["error"]) == (429, "too_many_streams")
            assert third.headers["retry-after"] == "5"
            assert "GATEWAY_STREAMS_PER_ACTOR" in third.json()["message"]
            # Another actor, and a read that is not a stream, are not held up.
            theirs = await client.get(path.replace("stream", "messages?limit=1"), headers=ME)
            assert theirs.status_code == 200
            async with client.stream("GET", path, headers={"X-Actor-Id": "f-2"}) as other:
                assert other.status_code == 200
        # Closed: the actor's share is free again.
        for _ in range(100):
            if fake.open_streams == 0:
                break
            await asyncio.sleep(0.05)
        async with client.stream("GET", path, headers=ME) as again:
            assert again.status_code == 200
