"""The gateway's process: POST /commands, GET /commands/{id}, the read proxy under /api/,
/openapi.json, /health, and the browser client at /."""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.runtime.config import ConfigError
from services.runtime.http import error_response
from services.runtime.logs import setup_logging

from .bus import CommandBus, KafkaUnavailable, Outcomes
from .commands import ACTOR_HEADER, Refusal, authenticated_actor, read_body, read_command
from .limits import CommandRate, OpenStreams, retry_after
from .openapi import openapi_document
from .proxy import ReadProxy, new_client
from .security import SecurityHeaders, json_only, same_origin
from .settings import GatewaySettings

log = logging.getLogger(__name__)
STATIC: Final = Path(__file__).parent / "static"


def refused(refusal: Refusal) -> JSONResponse:
    return JSONResponse(refusal.body(), status_code=refusal.status)


def create_app(settings: GatewaySettings) -> Starlette:
    bus = CommandBus(settings.kafka_bootstrap_servers, settings.publish_timeout_seconds)
    outcomes = Outcomes(settings.kafka_bootstrap_servers, settings.remembered_outcomes)
    client = new_client()
    proxy = ReadProxy(settings, client, OpenStreams(settings.streams_per_actor))
    rate = CommandRate(settings.commands_per_minute, settings.command_burst)
    document = openapi_document()

    async def send_command(request: Request) -> Response:
        actor = authenticated_actor(request.headers.get(ACTOR_HEADER))
        if isinstance(actor, Refusal):
            return refused(actor)
        cross_site = same_origin(request, settings.allowed_origins) or json_only(request)
        if cross_site is not None:
            return refused(cross_site)
        wait = rate.take(actor)
        if wait > 0:
            return error_response(
                429,
                "too_many_commands",
                f"{actor} sent more than {settings.command_burst} commands in a burst or "
                f"{settings.commands_per_minute:g} a minute; try again in "
                f"{retry_after(wait)} s (GATEWAY_COMMANDS_PER_MINUTE, GATEWAY_COMMAND_BURST)",
                headers={"Retry-After": retry_after(wait)},
            )
        body = await read_body(request.stream(), request.headers.get("content-length"))
        if isinstance(body, Refusal):
            return refused(body)
        command = read_command(
            body,
            actor,
            today=datetime.now(UTC).date(),
            max_contract_days=settings.max_contract_days,
        )
        if isinstance(command, Refusal):
            return refused(command)
        outcomes.note_actor(command.command_id, actor)
        try:
            await bus.publish(command)
        except KafkaUnavailable as error:
            log.warning("%s %s not sent: %s", command.type, command.command_id, error)
            return error_response(503, "kafka_unavailable", str(error))
        log.info(
            "%s %s published for %s",
            command.type,
            command.command_id,
            actor,
            extra={"command_id": command.command_id},
        )
        return JSONResponse(
            {"command_id": command.command_id},
            status_code=202,
            headers={"Location": f"/commands/{command.command_id}"},
        )

    async def command_outcome(request: Request) -> Response:
        actor = authenticated_actor(request.headers.get(ACTOR_HEADER))
        if isinstance(actor, Refusal):
            return refused(actor)
        command_id = request.path_params["command_id"]
        raw_wait = request.query_params.get("wait", "0")
        try:
            wait = min(float(raw_wait), settings.max_outcome_wait_seconds)
        except ValueError:
            wait = math.nan
        if not math.isfinite(wait):  # "nan" and "²" alike
            return error_response(
                400, "bad_request", f"wait must be a number of seconds, got {raw_wait!r}"
            )
        outcome = await outcomes.wait(command_id, max(wait, 0.0))
        if outcome is None or outcomes.actor_of(command_id) != actor:
            # Another party's outcome (event or refusal) is theirs to read: to anyone else
            # it looks like an unknown command's, no answer yet.
            return JSONResponse({"command_id": command_id, "status": "pending"})
        return JSONResponse({"command_id": command_id, **outcome})

    async def health(_: Request) -> Response:
        if outcomes.ready and await bus.ping(within=2):
            return JSONResponse({"status": "ok", "kafka": "ok"})
        return JSONResponse(
            {
                "status": "unavailable",
                "kafka": f"Kafka at {settings.kafka_bootstrap_servers} is not answering",
            },
            status_code=503,
        )

    async def openapi(_: Request) -> Response:
        return JSONResponse(document)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        following = asyncio.create_task(outcomes.run(), name="command outcomes")
        try:
            yield
        finally:
            following.cancel()
            with suppress(asyncio.CancelledError):
                await following
            await bus.close()
            await client.aclose()

    return Starlette(
        routes=[
            Route("/commands", send_command, methods=["POST"]),
            Route("/commands/{command_id}", command_outcome),
            Route("/api/{path:path}", proxy.handle),
            Route("/health", health),
            Route("/openapi.json", openapi),
            Mount("/", StaticFiles(directory=STATIC, html=True)),
        ],
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders)],
    )


@asynccontextmanager
async def in_process(settings: GatewaySettings) -> AsyncIterator[str]:
    """The gateway served by this process on a random loopback port, for the benchmark and
    the fault script that drive it over HTTP: yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():  # it could not start: say why
            await serving
            raise RuntimeError("the gateway stopped while starting")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


def main() -> None:
    setup_logging("gateway")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per proxied read is noise
    try:
        settings = GatewaySettings.from_env()
    except ConfigError as error:
        sys.exit(f"gateway: {error}")
    log.info(
        "gateway on http://%s:%d/ (Kafka %s)",
        settings.host,
        settings.port,
        settings.kafka_bootstrap_servers,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
