"""The HTTP shell of a service: health, the read API's JSON conventions, and the lifespan
that owns the broker, the database client and the background tasks."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .kafka import ensure_topics
from .metrics import ServiceMetrics
from .outbox import MongoOutbox
from .ownership import Ownership

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


class StartupError(RuntimeError):
    """The service cannot start; the message says why and what to do."""


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def not_found(what: str, ident: str) -> JSONResponse:
    return error_response(404, "not_found", f"no {what} with id {ident!r}")


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def page_size(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def encode_cursor(position: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


def decode_cursor(request: Request, name: str = "cursor") -> list[Any] | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (binascii.Error, ValueError):
        raise BadRequest(f"{name} is not a cursor this API handed out") from None
    if not isinstance(position, list):
        raise BadRequest(f"{name} is not a cursor this API handed out")
    return position


async def _bad_request(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return error_response(400, "bad_request", exc.message)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, "http_error", str(exc.detail))


BackgroundTask = Callable[[], Coroutine[Any, Any, None]]


def service_http_app(
    *,
    name: str,
    broker: KafkaBroker,
    mongo: AsyncMongoClient[dict[str, Any]],
    database: str,
    kafka_bootstrap_servers: str,
    topics: Sequence[str],
    routes: Sequence[Route],
    prepare: Callable[[], Awaitable[None]],
    metrics: ServiceMetrics,
    outboxes: Sequence[MongoOutbox],
    background: Sequence[BackgroundTask] = (),
    ownerships: Sequence[Ownership] = (),
) -> Starlette:
    """A Starlette app whose lifespan runs the service: prepare the database, start the
    broker's subscribers, run the background tasks; and stop all of it on shutdown."""

    async def health(_: Request) -> Response:
        problems: dict[str, str] = {}
        try:
            await asyncio.wait_for(mongo[database].command("ping"), timeout=2)
        except (PyMongoError, TimeoutError) as error:
            problems["mongodb"] = f"database not answering: {error}"
        if not await broker.ping(timeout=2):
            problems["kafka"] = "broker not answering"
        if problems:
            return JSONResponse({"status": "unavailable", **problems}, status_code=503)
        return JSONResponse({"status": "ok", "kafka": "ok", "mongodb": "ok"})

    async def metrics_page(_: Request) -> Response:
        # Gauges that are cheaper to read on a scrape than to keep up to date.
        for outbox in outboxes:
            with suppress(PyMongoError, TimeoutError):  # /health reports the database
                backlog = await asyncio.wait_for(outbox.unpublished(), timeout=2)
                metrics.outbox_backlog.labels(metrics.service, outbox.collection.name).set(backlog)
        await metrics.record_consumer_lag(broker)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            await prepare()
        except PyMongoError as error:
            raise StartupError(
                f"{name}: cannot reach the database at {mongo.address or 'MONGODB_URL'} "
                f"({error.__class__.__name__}); start it with `make infra-up` or set MONGODB_URL"
            ) from None
        try:
            partitions = await ensure_topics(kafka_bootstrap_servers, topics)
            for ownership in ownerships:
                ownership.partitions = partitions[ownership.topic]
            await broker.start()
        except Exception as error:
            raise StartupError(
                f"{name}: cannot reach Kafka ({error}); start it with `make infra-up` "
                "or set KAFKA_BOOTSTRAP_SERVERS"
            ) from None
        tasks = [asyncio.create_task(task(), name=f"{name}-background") for task in background]
        log.info("%s started", name)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await broker.stop()
            await mongo.close()
            log.info("%s stopped", name)

    app = Starlette(
        routes=[Route("/health", health), Route("/metrics", metrics_page), *routes],
        lifespan=lifespan,
        exception_handlers={BadRequest: _bad_request, HTTPException: _http_error},
    )
    app.state.broker = broker  # for the AsyncAPI documents (services.asyncapi)
    return app
