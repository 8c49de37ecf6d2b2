"""A service started before its database and Kafka waits for them, says what it waits for
(one line per attempt, and /health 503 with the reason), and starts once they answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from urllib.parse import urlsplit

import httpx
import pytest

from contracts import topics
from services.messaging_service.app import create_app
from tests.conftest import fresh_settings
from tests.infrastructure import Endpoints
from tests.kit import Parties, Producer, command

pytestmark = pytest.mark.integration


class LateProxy:
    """A TCP port that refuses connections until `open()`, then forwards them to `target`."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host or "127.0.0.1", int(port))
        self.server: asyncio.Server | None = None
        self.port = 0

    async def reserve(self) -> None:
        # A free port, closed again: nothing listens there until open().
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        self.port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@contextlib.asynccontextmanager
async def late(target: str) -> AsyncIterator[LateProxy]:
    proxy = LateProxy(target)
    await proxy.reserve()
    try:
        yield proxy
    finally:
        await proxy.close()


async def test_a_service_started_before_its_infrastructure_waits_and_then_works(
    infra: Endpoints, producer: Producer, caplog: pytest.LogCaptureFixture
) -> None:
    mongo = urlsplit(infra.mongodb_url)
    settings = await fresh_settings(infra, "messaging_service")
    async with (
        late(f"{mongo.hostname}:{mongo.port}") as database,
        late(infra.kafka_bootstrap_servers) as kafka,
    ):
        settings = replace(
            settings,
            mongodb_url=f"mongodb://127.0.0.1:{database.port}",
            kafka_bootstrap_servers=f"127.0.0.1:{kafka.port}",
        )
        app = create_app(settings)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s")
        with caplog.at_level(logging.WARNING, logger="services.runtime.app"):
            async with app.router.lifespan_context(app):
                await asyncio.sleep(7)  # the database's server selection gives up after 5 s
                waiting = await client.get("/health")
                assert waiting.status_code == 503
                assert f"127.0.0.1:{database.port}" in waiting.json()["mongodb"]
                assert any(
                    f"cannot reach the database at mongodb://127.0.0.1:{database.port}" in line
                    and "attempt 1" in line
                    and "MONGODB_URL" in line
                    for line in caplog.messages
                )
                await database.open()
                await wait_until(
                    lambda: (
                        "kafka" in app.state.starting.waiting
                        and "waiting" in app.state.starting.waiting["kafka"]
                    )
                )
                assert (await client.get("/health")).status_code == 503
                await kafka.open()
                await wait_until(lambda: app.state.starting.done, within=60)
                assert (await client.get("/health")).status_code == 200
                p = Parties()
                post = command(
                    "PostMessage", p.freelancer_id, offer_id=p.offer_id, message_id="m-1", text="hi"
                )
                await producer.send(topics.NEGOTIATIONS_COMMANDS, post, key=p.offer_id)
                await wait_until(lambda: app.state.records.parking.holds(p.offer_id), within=30)
                # It works: the command was read, and waits (parked) for its offer.
        await client.aclose()


async def wait_until(condition: Callable[[], bool], within: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_a_password_in_mongodb_url_is_in_no_log_line_nor_in_health(
    infra: Endpoints, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cret-Pw"
    settings = await fresh_settings(infra, "messaging_service")
    async with late("127.0.0.1:1") as database:  # nothing answers there
        url = f"mongodb://offers:{secret}@127.0.0.1:{database.port}/?authSource=admin"
        app = create_app(replace(settings, mongodb_url=url))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s")
        with caplog.at_level(logging.INFO):
            async with app.router.lifespan_context(app):
                await asyncio.sleep(7)  # the database's server selection gives up after 5 s
                waiting = await client.get("/health")
        assert waiting.status_code == 503
        told = waiting.text + "\n".join(caplog.messages)
        assert f"mongodb://offers:***@127.0.0.1:{database.port}" in waiting.json()["mongodb"]
        assert any(
            "cannot reach the database at mongodb://offers:***@" in m for m in caplog.messages
        )
        assert secret not in told
