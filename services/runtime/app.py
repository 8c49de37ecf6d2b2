"""A service's process, assembled from its table: the broker with one subscriber set over
all its topics and a publisher per topic it writes, the database, the unit of work, the
parking, the background sweeps, and a Starlette app whose lifespan runs all of it and
serves /health, /metrics and the read API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts.internal import InternalCommand

from .background import every
from .batch import Batched, StateCache
from .clock import utc_now
from .config import Settings, mongo_client
from .crash import crash_point
from .documents import Document, Documents
from .due import DueBuckets
from .http import BadRequest, Refused, StartupError, bad_request, http_error, refused
from .kafka import (
    Commits,
    Publishers,
    TopicLayoutError,
    check_copartitioned,
    ensure_topics,
    new_broker,
    on_each_batch,
    subscribe_all,
)
from .kafka_access import KafkaRefused
from .metrics import ServiceMetrics
from .openapi import Json, openapi_document
from .outbox import PENDING, ensure_outbox_indexes
from .parking import Parking
from .refusals import FORGET_EVERY_SECONDS, Refusals, forget_rejections, rejections_kept_for
from .requests import Requests, quiet_for
from .secrets import redact
from .service import Records, ServiceTable, release_request
from .streams import Streams
from .uow import UnitOfWork
from .wire import RecordOrigin

log = logging.getLogger(__name__)

BackgroundTask = Callable[[], Coroutine[Any, Any, None]]
T = TypeVar("T")
# How long a stopping service waits to commit what it handled.
STOP_COMMIT_SECONDS = 5


@dataclass
class Kit:
    """What a service's handlers and sweeps are built from."""

    settings: Settings
    database: AsyncDatabase[Document]
    uow: UnitOfWork
    refusals: Refusals
    requests: Requests
    metrics: ServiceMetrics
    # The consumers' state cache: a sweep hands it what it read (StateCache.see).
    cache: StateCache

    def seen_by_sweep(self, name: str) -> Callable[[list[tuple[str, bytes]]], None]:
        """What a sweep (DueBuckets `seen`) hands the records of `name` it read whole: the
        record that asks for one may take it instead of reading it (`Decides.seen`)."""
        return lambda documents: self.cache.see(name, documents)

    def documents(
        self, name: str, *, shared: bool = False, kept: bool = True, listed: bool = False
    ) -> Batched:
        """A collection the handlers write: a batch at a time (services.runtime.batch).
        `shared`: other partitions write its documents too (`Batched.shared`); `kept`: its
        documents are aggregates, kept between batches (False: write-once ones); `listed`:
        they are few, and the consumers keep all their ids, so that an id not listed is not
        read (`Listing`)."""
        collection = self.database[name]
        listing = self.cache.listing(collection) if listed else None
        return Batched(collection, shared=shared, kept=kept, listing=listing)

    def asking_sweep(
        self,
        due: DueBuckets,
        ask_for: Callable[[Document, datetime], InternalCommand | None],
        what: str,
    ) -> BackgroundTask:
        """Every EXPIRY_SWEEP_INTERVAL_SECONDS, the due work of `due`, each asked for with
        the internal command `ask_for` makes of it (None: not due yet). A sweep only asks:
        the document leaves its bucket once its aggregate's handler has done the work."""

        async def pass_() -> None:
            now = utc_now()

            async def ask(page: list[Document]) -> int:
                commands = (ask_for(document, now) for document in page)
                await self.requests.send_many(c for c in commands if c is not None)
                return 0

            await due.sweep_pages(now, ask)

        async def sweep() -> None:
            await every(self.settings.expiry_sweep_interval_seconds, pass_, what)

        return sweep


@dataclass
class Built:
    handlers: Any
    read_routes: Sequence[Route]
    prepare: Callable[[], Awaitable[None]]
    # The collections with outboxes, for the backlog gauge.
    outboxes: Sequence[Documents] = ()
    background: Sequence[BackgroundTask] = field(default_factory=tuple)
    # The service's pushed streams, if it has any (for the tests and /metrics).
    streams: Streams | None = None
    # The read API's paths in its OpenAPI document (services.runtime.openapi).
    openapi_paths: Json = field(default_factory=dict)


class ConsumedPartitions:
    """services.runtime.service.Partitions, from the consumers that hold them."""

    def __init__(self) -> None:
        self.subscribers: Sequence[Any] = ()

    def _holder(self, wanted: TopicPartition) -> Any:
        for subscriber in self.subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is not None and wanted in consumer.assignment():
                return consumer
        return None

    def newest(self, topic: str, partition: int) -> int | None:
        wanted = TopicPartition(topic, partition)
        consumer = self._holder(wanted)
        return None if consumer is None else consumer.highwater(wanted)

    async def committed(self, topic: str, partition: int) -> int | None:
        wanted = TopicPartition(topic, partition)
        consumer = self._holder(wanted)
        if consumer is None:
            return None
        try:
            return await asyncio.wait_for(consumer.committed(wanted), timeout=5)
        except (KafkaError, TimeoutError):
            return None  # not known now: asked again on the next sweep


def give_back(message: KafkaMessage, records: Sequence[Any]) -> None:
    """Records fetched before a rebalance took their partitions away: not ours to handle.
    If the consumer still holds a partition (the rebalance is under way), it rewinds to the
    earliest of them, so that they are fetched again should it keep the partition; if it no
    longer does, their new owner reads them from the last committed offset (their offsets
    are never noted for a commit here)."""
    consumer: Any = getattr(message, "consumer", None)  # aiokafka's, set by FastStream
    earliest: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        earliest[partition] = min(record.offset, earliest.get(partition, record.offset))
    for partition, offset in earliest.items():
        if consumer is not None and partition in consumer.assignment():
            consumer.seek(partition, offset)
        log.info("left %s[%d]@%d on to the partition's new owner", *partition, offset)


def service_app(
    declared: ServiceTable, settings: Settings, build: Callable[[Kit], Built]
) -> Starlette:
    table = declared.for_group(settings.kafka_group_id)
    metrics = ServiceMetrics(table.name)
    broker = new_broker(settings, log, metrics)
    mongo = mongo_client(settings, [metrics.database_listener()])
    database = mongo[settings.database_name]
    publishers = Publishers(broker, table.publishes, metrics)
    uow = UnitOfWork(publishers.publish_together, utc_now, table.internal_topic)
    cache = StateCache(settings.state_cache_size)
    # Refused commands are few beside the ones handled: listed, so that a command is not
    # looked up among them unless it was refused (`Listing`).
    rejections = database["rejections"]
    refusals = Refusals(
        Batched(rejections, kept=False, listing=cache.listing(rejections)), uow, metrics
    )
    parking = Parking(Batched(database["parked"]), utc_now)
    requests = Requests(
        publishers.publish_together,
        table.internal_topic,
        quiet=quiet_for(settings.expiry_sweep_interval_seconds),
    )
    kit = Kit(settings, database, uow, refusals, requests, metrics, cache)
    built = build(kit)
    partitions = ConsumedPartitions()
    records = Records(
        table,
        built.handlers,
        refusals=refusals,
        parking=parking,
        dead_letter=publishers.dead_letter,
        metrics=metrics,
        max_contract_days=settings.max_contract_days,
        unknown_wait=timedelta(seconds=settings.unknown_offer_wait_seconds),
        partitions=partitions,
        publish_all=publishers.publish_together,
        cache=cache,
    )
    commits = Commits(settings.kafka_commit_interval_ms / 1000, records.in_flight)
    subscribers = subscribe_all(broker, table.consumed_topics, settings, commits)
    partitions.subscribers = subscribers

    async def on_batch(message: KafkaMessage) -> None:
        fetched: tuple[Any, ...] = message.raw_message
        owned: list[Any] = []
        not_owned: list[Any] = []
        for record in fetched:
            ours = records.in_flight.owns(record.topic, record.partition)
            (owned if ours else not_owned).append(record)
        give_back(message, not_owned)
        if owned:
            try:
                await records.handle_batch([(r.value or b"", RecordOrigin.of(r)) for r in owned])
            except Exception:
                await message.nack()  # each partition back to the batch's first record
                raise
        crash_point("before_commit")
        commits.handled(message.consumer, owned)

    for subscriber in subscribers:
        on_each_batch(broker, subscriber, on_batch)

    async def ask_release_of_due() -> None:
        now = utc_now()
        await requests.send_many(release_request(key, now) for key in parking.due())

    async def sweep_parked() -> None:
        await every(settings.parked_sweep_interval_seconds, ask_release_of_due, "parked sweep")

    rejections_kept = rejections_kept_for(settings.topic_layout)

    async def forget_old_rejections() -> None:
        if rejections_kept is not None:  # else kept as long as the topics keep theirs: forever
            forget = partial(forget_rejections, rejections, rejections_kept)
            await every(FORGET_EVERY_SECONDS, forget, "forgetting old rejections")

    async def prepare() -> None:
        await built.prepare()
        await ensure_outbox_indexes(refusals.documents)
        await parking.ensure_indexes()
        await parking.reload()

    starting = Starting(table.name)

    async def health(_: Request) -> Response:
        if not starting.done:
            return JSONResponse({"status": "starting", **starting.waiting}, status_code=503)
        problems: dict[str, str] = {}
        try:
            await asyncio.wait_for(database.command("ping"), timeout=2)
        except (PyMongoError, TimeoutError) as error:
            problems["mongodb"] = redact(f"database not answering: {error}")
        if not await broker.ping(timeout=2):
            problems["kafka"] = "broker not answering"
        if problems:
            return JSONResponse({"status": "unavailable", **problems}, status_code=503)
        return JSONResponse({"status": "ok", "kafka": "ok", "mongodb": "ok"})

    async def metrics_page(_: Request) -> Response:
        # Gauges that are cheaper to read on a scrape than to keep up to date.
        with suppress(PyMongoError, TimeoutError):  # /health reports the database
            for documents in (*built.outboxes, refusals.documents):
                backlog = await asyncio.wait_for(documents.count(PENDING, True), timeout=2)
                metrics.outbox_backlog.labels(table.name, documents.name).set(backlog)
            parked, oldest = await asyncio.wait_for(parking.stats(), timeout=2)
            metrics.parked.labels(table.name).set(parked)
            metrics.parked_oldest_seconds.labels(table.name).set(oldest)
        if built.streams is not None:
            metrics.stream_clients.labels(table.name).set(built.streams.hub.count)
        await metrics.record_consumer_lag(broker)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    openapi = openapi_document(table.name, built.openapi_paths)

    async def openapi_page(_: Request) -> Response:
        return JSONResponse(openapi)

    async def start() -> list[asyncio.Task[None]]:
        """Waits for the database and Kafka (in whatever order they come up), then starts."""
        await starting.wait_for(
            "mongodb",
            f"the database at {redact(settings.mongodb_url)}",
            prepare,
            "start it (`make infra-up`) or set MONGODB_URL",
        )

        async def topics() -> dict[str, int]:
            try:
                await settings.kafka_security.probe(settings.kafka_bootstrap_servers)
            except KafkaRefused as error:
                raise StartupError(str(error)) from None
            return await ensure_topics(
                settings.kafka_bootstrap_servers,
                table.topics,
                settings.topic_layout,
                settings.kafka_security,
            )

        kafka = f"Kafka at {settings.kafka_address()}"
        counts = await starting.wait_for(
            "kafka", kafka, topics, "start it (`make infra-up`) or set KAFKA_BOOTSTRAP_SERVERS"
        )
        try:
            check_copartitioned(counts, table.consumed_topics)
        except TopicLayoutError as error:
            raise StartupError(f"{table.name}: {error}") from None
        await starting.wait_for(
            "kafka",
            kafka,
            broker.start,
            "start it (`make infra-up`) or set KAFKA_BOOTSTRAP_SERVERS",
        )
        tasks = [
            asyncio.create_task(task(), name=f"{table.name}-background")
            for task in (sweep_parked, forget_old_rejections, commits.run, *built.background)
        ]
        starting.done = True
        log.info(
            "%s started: %d consumer(s) over %s, on Kafka at %s",
            table.name,
            settings.kafka_consumers,
            ", ".join(table.consumed_topics),
            settings.kafka_address(),
        )
        return tasks

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # HTTP answers at once (/health says what the service is waiting for); the service
        # itself starts once its database and Kafka answer. A start that cannot succeed
        # (topics laid out wrong) stops the process with the reason.
        starter = asyncio.create_task(start(), name=f"{table.name}-start")
        starter.add_done_callback(partial(stop_on_failure, app))
        try:
            yield
        finally:
            starter.cancel()
            tasks = await asyncio.gather(starter, return_exceptions=True)
            background = tasks[0] if isinstance(tasks[0], list) else []
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            # What was handled, committed before the consumers leave (not waited for long:
            # on a broker that does not answer, their records are only handled again).
            with suppress(TimeoutError):
                await asyncio.wait_for(commits.commit(), timeout=STOP_COMMIT_SECONDS)
            await broker.stop()
            await mongo.close()
            log.info("%s stopped", table.name)

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/metrics", metrics_page),
            Route("/openapi.json", openapi_page),
            *built.read_routes,
        ],
        lifespan=lifespan,
        exception_handlers={BadRequest: bad_request, Refused: refused, HTTPException: http_error},
    )
    app.state.broker = broker  # for the AsyncAPI documents (services.asyncapi)
    app.state.records = records  # for the tests
    app.state.streams = built.streams  # for the tests
    app.state.starting = starting
    # What stops the process when the start fails for good: services.runtime.main sets it;
    # in a test, the test reads starting.failed.
    app.state.stop_process = None
    return app


class Starting:
    """What a service waits for before it starts, for /health and for the log."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.done = False
        self.failed: str | None = None
        self.waiting: dict[str, str] = {"mongodb": "not tried yet", "kafka": "not tried yet"}

    async def wait_for(
        self, what: str, where: str, attempt: Callable[[], Awaitable[T]], hint: str
    ) -> T:
        """`attempt` until it succeeds, backing off to 10 s, one line per failed attempt."""
        delay, tries = 0.5, 1
        while True:
            try:
                result = await attempt()
            except (PyMongoError, KafkaError, OSError, TimeoutError) as error:
                reason = redact((str(error).splitlines() or [type(error).__name__])[0])[:200]
                self.waiting[what] = f"waiting for {where}: {reason}"
                log.warning(
                    "%s: cannot reach %s (attempt %d: %s); %s. Trying again in %.1fs",
                    self.name,
                    where,
                    tries,
                    reason,
                    hint,
                    delay,
                )
                await asyncio.sleep(delay)
                delay, tries = min(delay * 2, 10.0), tries + 1
                continue
            self.waiting[what] = "ok"
            return result


def stop_on_failure(app: Starlette, task: asyncio.Task[list[asyncio.Task[None]]]) -> None:
    """A start that failed for good (not an outage: those are waited out) stops the process,
    with the reason in the log and exit status 1 (services.runtime.main)."""
    if task.cancelled() or task.exception() is None:
        return
    error = task.exception()
    app.state.starting.failed = str(error)
    log.error("%s could not start: %s", app.state.starting.name, error)
    if app.state.stop_process is not None:
        app.state.stop_process()
