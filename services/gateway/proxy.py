"""The read APIs and their streams under one origin (so the page needs no CORS):
``/api/<resource>/...`` is passed to the service that owns the resource, and its answer,
Server-Sent Events included, is passed back chunk by chunk as it arrives."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Final

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from services.runtime.http import error_response
from services.runtime.secrets import redact

from .commands import ACTOR_HEADER, Refusal, authenticated_actor
from .limits import OpenStreams
from .settings import GatewaySettings

log = logging.getLogger(__name__)

# The stand-in page's actor for a stream (GatewaySettings.page_actor): never passed on.
PAGE_ACTOR_PARAMETER: Final = "actor_id"
# What the browser sends that the service needs (the stream's resume point).
FORWARDED_UP: Final = ("accept", "last-event-id")
FORWARDED_DOWN: Final = ("content-type", "content-encoding", "cache-control", "retry-after")
# Reads are quick; a stream is open for as long as the page is (heartbeats keep it alive).
READ_TIMEOUT: Final = httpx.Timeout(10.0)
STREAM_TIMEOUT: Final = httpx.Timeout(10.0, read=None)


def upstreams(settings: GatewaySettings) -> dict[str, tuple[str, str]]:
    """The first path segment under /api/ → (service name, its base URL)."""
    offers = ("offer_service", settings.offer_service_url)
    return {
        "offers": offers,
        "contracts": offers,
        "talent-clouds": offers,
        "threads": ("messaging_service", settings.messaging_service_url),
        "notifications": ("notification_service", settings.notification_service_url),
    }


def new_client() -> httpx.AsyncClient:
    # One connection per open stream: the pool must not be what bounds the streams.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    return httpx.AsyncClient(limits=limits)


class ReadProxy:
    def __init__(
        self, settings: GatewaySettings, client: httpx.AsyncClient, streams: OpenStreams
    ) -> None:
        self.routes = upstreams(settings)
        self.client = client
        self.streams = streams
        self.page_actor = settings.page_actor

    def actor(self, request: Request, *, streaming: bool) -> str | Refusal:
        """The signed-in actor: the proxy's header; on the local stand-in, a stream's
        `?actor_id=` when there is no header (an EventSource cannot set one)."""
        header = request.headers.get(ACTOR_HEADER)
        if not header and streaming and self.page_actor:
            header = request.query_params.get(PAGE_ACTOR_PARAMETER)
        return authenticated_actor(header)

    async def handle(self, request: Request) -> Response:
        path: str = request.path_params["path"]
        resource = path.split("/", 1)[0]
        if resource not in self.routes:
            known = ", ".join(f"/api/{name}" for name in self.routes)
            return error_response(404, "not_found", f"no /api/{resource}: the API has {known}")
        if any(segment in (".", "..") for segment in path.split("/")):
            return error_response(404, "not_found", "a path under /api/ names a resource")
        streaming = path.endswith("/stream")
        actor = self.actor(request, streaming=streaming)
        if isinstance(actor, Refusal):
            return JSONResponse(actor.body(), status_code=actor.status)
        service, base = self.routes[resource]
        query = request.query_params.multi_items()
        params = httpx.QueryParams([(k, v) for k, v in query if k != PAGE_ACTOR_PARAMETER])
        headers = {k: v for k in FORWARDED_UP if (v := request.headers.get(k))}
        try:
            upstream_request = self.client.build_request(
                "GET",
                f"{base}/{path}",
                params=params,
                headers={**headers, ACTOR_HEADER: actor},
                timeout=STREAM_TIMEOUT if streaming else READ_TIMEOUT,
            )
        except (httpx.InvalidURL, ValueError) as error:  # a header that is not ASCII, say
            return error_response(
                400, "bad_request", f"the read cannot be passed on as it is: {error}"
            )
        release = self.streams.open(actor) if streaming else _nothing
        if release is None:
            return error_response(
                429,
                "too_many_streams",
                f"{actor} has {self.streams.per_actor} streams open through this gateway "
                "already (GATEWAY_STREAMS_PER_ACTOR); close one (another tab?) and retry",
                headers={"Retry-After": "5"},
            )
        try:
            upstream = await self.client.send(upstream_request, stream=True)
        except httpx.HTTPError as error:
            release()
            where = redact(base)
            log.warning("%s at %s is not answering: %s", service, where, redact(str(error)))
            return error_response(
                502,
                "upstream_unavailable",
                f"{service} at {where} is not answering; is it running?",
            )
        headers = {k: v for k in FORWARDED_DOWN if (v := upstream.headers.get(k))}
        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            headers["x-accel-buffering"] = "no"  # tell any proxy further out not to buffer
        return StreamingResponse(
            _relay(upstream, release),
            status_code=upstream.status_code,
            headers=headers,
            # A response that never started its body releases its stream here.
            background=BackgroundTask(release),
        )


def _nothing() -> None:
    return None


async def _relay(upstream: httpx.Response, release: Callable[[], None]) -> AsyncIterator[bytes]:
    """The upstream body as it comes; the upstream connection closes with the browser's."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as error:
        log.info("upstream stream ended: %s", error)
    finally:
        release()
        await upstream.aclose()
