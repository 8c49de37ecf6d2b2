"""The pushed streams against the real Kafka and database, over real HTTP: a thread's items
pushed as they are stored, resumed exactly with Last-Event-ID, served by every instance,
a slow client cut off without holding up a fast one, and the bounds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from contracts import topics
from services.messaging_service.app import create_app as messaging_app
from services.messaging_service.domain import STREAM_END
from services.notification_service.app import create_app as notification_app
from services.runtime.kafka_access import client_options
from services.runtime.outbox import STREAM_ID_HEADER
from tests.conftest import fresh_settings
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, as_, new_id, of_type

from .sse import Served, served, stream
from .test_messaging_service import offer_event, open_thread, post, send_command, send_event

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def messaging(infra: Endpoints) -> AsyncIterator[Served]:
    settings = await fresh_settings(infra, "messaging_service", stream_heartbeat_seconds=1.0)
    async with served(messaging_app(settings)) as service:
        yield service


def thread_path(parties: Parties) -> str:
    return f"/threads/{parties.offer_id}/stream"


async def known(service: Served, producer: Producer, *threads: Parties) -> None:
    """Each offer's thread opened, and known to the service (its parties with it)."""
    for parties in threads:
        await open_thread(producer, parties)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    for parties in threads:
        path, me = f"/threads/{parties.offer_id}/messages", as_(parties.client_id)
        while (await service.client.get(path, headers=me)).status_code != 200:
            assert loop.time() < deadline, f"thread {parties.offer_id} never opened"
            await asyncio.sleep(0.1)


async def test_a_thread_stream_opens_for_its_parties_once_the_offer_is_known(
    messaging: Served, producer: Producer, probe: Probe
) -> None:
    """Before messaging_service has heard of the offer it cannot tell its parties: the
    stream is refused as an unknown one (404), so it is no way around the parties' check."""
    parties = Parties()
    early = await messaging.client.get(thread_path(parties), headers=as_(parties.client_id))
    assert early.status_code == 404 and early.json()["error"] == "not_found"
    await known(messaging, producer, parties)
    stranger = await messaging.client.get(thread_path(parties), headers=as_(new_id("x")))
    assert (stranger.status_code, stranger.json()["error"]) == (404, "not_found")
    nobody = await messaging.client.get(thread_path(parties))
    assert (nobody.status_code, nobody.json()["error"]) == (401, "unauthenticated")
    async with stream(messaging.client, thread_path(parties), as_(parties.freelancer_id)) as thread:
        assert thread.status_code == 200
        assert thread.response.headers["content-type"].startswith("text/event-stream")
        message = post(parties, parties.client_id, "Welcome! Any questions?")
        await send_command(producer, message, parties.offer_id)
        item = await thread.next()
        [published] = await probe.wait_for(of_type("MessagePosted", offer_id=parties.offer_id))
        # Numbered by its command's place in negotiations.commands: a whole number.
        assert item.event == "MessagePosted" and item.id is not None and item.id.isdigit()
        assert item.data == published.raw.decode()  # the event exactly as published
        assert item.json()["message_id"] == message["message_id"]
        assert published.headers[STREAM_ID_HEADER] == item.id
        await thread.nothing_more(1.5)  # heartbeats only, every second here
        assert thread.heartbeats >= 1


async def test_a_reconnect_gets_what_it_missed_once_then_the_live_items(
    messaging: Served, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await known(messaging, producer, parties)
    me = as_(parties.client_id)
    texts = [f"message {n}" for n in range(1, 7)]
    async with stream(messaging.client, thread_path(parties), me) as first:
        for text in texts[:2]:
            await send_command(producer, post(parties, parties.client_id, text), parties.offer_id)
        seen = await first.items(2)
    assert [i.json()["text"] for i in seen] == texts[:2]
    ids = [int(i.id or 0) for i in seen]

    # Missed while disconnected: 3 and 4.
    for text in texts[2:4]:
        await send_command(producer, post(parties, parties.freelancer_id, text), parties.offer_id)
    await probe.wait_for(of_type("MessagePosted", offer_id=parties.offer_id), count=4)

    resume = {"Last-Event-ID": str(ids[1]), **me}
    async with stream(messaging.client, thread_path(parties), resume) as again:
        missed = await again.items(2)
        await send_command(producer, post(parties, parties.client_id, texts[4]), parties.offer_id)
        live = await again.next()
        withdraw = offer_event("OfferWithdrawn", parties, reason="found someone else")
        await send_event(producer, withdraw)
        closed = await again.next()
        await again.nothing_more()
    assert [i.json()["text"] for i in [*missed, live]] == texts[2:5]
    ids += [int(i.id or 0) for i in [*missed, live]]
    assert ids == sorted(set(ids)), f"the ids do not increase: {ids}"
    # The closing ends the stream: its id is the last there is.
    assert (closed.id, closed.event, closed.json()["reason"]) == (
        str(STREAM_END),
        "ThreadClosed",
        "withdrawn",
    )
    assert closed.json()["causation_id"] == withdraw["event_id"]

    # A first connect that can set no header: the query parameter, from the database only.
    path = f"{thread_path(parties)}?last_event_id={ids[3]}"
    async with stream(messaging.client, path, me) as browser:
        assert [i.id for i in await browser.items(2)] == [str(ids[4]), str(STREAM_END)]
        await browser.nothing_more(1)
    # No id at all: the whole thread.
    async with stream(messaging.client, thread_path(parties), me) as whole:
        assert [i.id for i in await whole.items(6)] == [*map(str, ids), str(STREAM_END)]


async def test_a_malformed_last_event_id_is_refused_with_the_reason(messaging: Served) -> None:
    response = await messaging.client.get(
        "/threads/offer-1/stream", headers={"Last-Event-ID": "yesterday", **as_("client-1")}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "bad_request",
        "message": "Last-Event-ID must be the id of an item this stream sent (a whole number), "
        "got 'yesterday'",
        "errors": [],
    }


async def test_the_openapi_document_describes_the_stream(messaging: Served) -> None:
    document = (await messaging.client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    stream_get = document["paths"]["/threads/{offer_id}/stream"]["get"]
    assert set(stream_get["responses"]) == {"200", "400", "401", "404", "503"}
    assert "text/event-stream" in stream_get["responses"]["200"]["content"]
    assert "/threads/{offer_id}/messages" in document["paths"]


async def test_beyond_the_connection_bound_a_client_is_told_to_come_back(
    infra: Endpoints, producer: Producer
) -> None:
    settings = await fresh_settings(infra, "messaging_service", stream_max_connections=2)
    async with served(messaging_app(settings)) as service:
        o1, o2, o3 = Parties(), Parties(), Parties()
        await known(service, producer, o1, o2, o3)
        async with (
            stream(service.client, thread_path(o1), as_(o1.client_id)) as one,
            stream(service.client, thread_path(o2), as_(o2.client_id)) as two,
        ):
            assert (one.status_code, two.status_code) == (200, 200)
            refused = await service.client.get(thread_path(o3), headers=as_(o3.client_id))
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert "maximum of 2 streams" in refused.json()["message"]
        await asyncio.sleep(0.2)  # the closed ones leave the hub
        async with stream(service.client, thread_path(o3), as_(o3.client_id)) as three:
            assert three.status_code == 200


def partition_of(key: str, partitions: int) -> int:
    chosen: int = DefaultPartitioner()(key.encode(), list(range(partitions)), [])
    return chosen


async def test_a_client_on_either_instance_gets_every_item(
    infra: Endpoints, producer: Producer
) -> None:
    """Two instances in one group share the partitions; a client on each follows threads
    whose commands the other instance handles."""
    settings = await fresh_settings(infra, "messaging_service", kafka_consumers=1)
    async with served(messaging_app(settings)) as a, served(messaging_app(settings)) as b:
        partitions = settings.topic_layout.partitions
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30

        def owner(partition: int) -> Served | None:
            owners = [
                s
                for s in (a, b)
                if s.app.state.records.in_flight.owns(topics.NEGOTIATIONS_COMMANDS, partition)
            ]
            return owners[0] if len(owners) == 1 else None

        while (
            not all(owner(p) for p in range(partitions))
            or len({id(owner(p)) for p in range(partitions)}) < 2
        ):
            assert loop.time() < deadline, "the two instances never shared the partitions"
            await asyncio.sleep(0.2)
        # One thread on a partition of each instance.
        threads: dict[int, Parties] = {}
        while {id(owner(partition_of(t.offer_id, partitions))) for t in threads.values()} != {
            id(a),
            id(b),
        }:
            parties = Parties()
            threads[len(threads)] = parties
        chosen = list(threads.values())
        await known(a, producer, *chosen)
        first, last = as_(chosen[0].client_id), as_(chosen[-1].freelancer_id)
        async with (
            stream(a.client, thread_path(chosen[0]), first) as a0,
            stream(b.client, thread_path(chosen[0]), first) as b0,
            stream(a.client, thread_path(chosen[-1]), last) as a1,
            stream(b.client, thread_path(chosen[-1]), last) as b1,
        ):
            for parties in (chosen[0], chosen[-1]):
                message = post(parties, parties.client_id, f"hello {parties.offer_id}")
                await send_command(producer, message, parties.offer_id)
            for (on_a, on_b), parties in (((a0, b0), chosen[0]), ((a1, b1), chosen[-1])):
                item_a, item_b = await on_a.next(), await on_b.next()
                assert item_a.json()["offer_id"] == item_b.json()["offer_id"] == parties.offer_id
                assert item_a.id == item_b.id  # one number, whichever instance pushed it


async def test_a_slow_client_is_cut_off_while_a_fast_one_gets_every_item(
    infra: Endpoints, producer: Producer
) -> None:
    settings = await fresh_settings(
        infra, "messaging_service", stream_client_buffer=20, stream_send_timeout_seconds=120.0
    )
    parties = Parties()
    offer_id = parties.offer_id
    # Large records, so that the slow client's socket and the kernel's buffers fill soon.
    n, text = 200, "x" * 64_000
    async with served(settings_app := messaging_app(settings)) as service:
        assert settings_app is service.app
        await known(service, producer, parties)
        # The slow client: a socket with a small receive buffer that reads nothing for now.
        # (Set before connecting: the window is agreed on in the handshake.)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", int(service.url.rsplit(":", 1)[1])))
        request = (
            f"GET /threads/{offer_id}/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"X-Actor-Id: {parties.client_id}"
        )
        slow.sendall(f"{request}\r\n\r\n".encode())
        fast_path = f"/threads/{offer_id}/stream"
        async with stream(service.client, fast_path, as_(parties.freelancer_id)) as fast:
            await asyncio.sleep(0.3)
            assert service.app.state.streams.hub.count == 2
            following = asyncio.create_task(fast.items(n, within=60))
            kafka = AIOKafkaProducer(**client_options(infra.kafka_bootstrap_servers))
            await kafka.start()
            try:
                for position in range(1, n + 1):
                    event = posted_event(offer_id, position, text)
                    await kafka.send_and_wait(
                        topics.NEGOTIATIONS_EVENTS,
                        json.dumps(event).encode(),
                        key=offer_id.encode(),
                        headers=[
                            ("type", b"MessagePosted"),
                            (STREAM_ID_HEADER, str(position).encode()),
                        ],
                    )
                received = [(item.event, int(item.id or 0)) for item in await following]
            finally:
                await kafka.stop()
        assert received == [("MessagePosted", p) for p in range(1, n + 1)]
        body = await asyncio.to_thread(read_all, slow)
        metrics = (await service.client.get("/metrics")).text
        assert 'offers_streams_cut_off_total{service="messaging_service"} 1.0' in metrics
        assert 'offers_stream_clients{service="messaging_service"} 0.0' in metrics
    items = [block for block in body.split("\n\n") if "event:" in block]
    assert items, f"the slow client got nothing at all: {body[:300]!r}"
    assert items[-1].startswith("event: overflow"), items[-1][:200]
    reason = json.loads(items[-1].split("data: ", 1)[1])
    got = [
        int(line[4:])
        for block in items[:-1]
        for line in block.splitlines()
        if line.startswith("id: ")
    ]
    assert got == list(range(1, len(got) + 1)) and len(got) < n
    last = len(got)
    assert reason == {
        "reason": f"you fell behind by more than 20 items; reconnect with Last-Event-ID: {last}",
        "last_event_id": str(last),
    }


def posted_event(offer_id: str, position: int, text: str) -> dict[str, Any]:
    return {
        "type": "MessagePosted",
        "event_id": new_id("event"),
        "schema_version": 1,
        "occurred_at": "2026-12-01T12:00:00.000Z",
        "causation_id": new_id("command"),
        "offer_id": offer_id,
        "message_id": f"m-{position}",
        "sender_id": "client-1",
        "text": text,
        "sent_at": "2026-12-01T12:00:00.000Z",
    }


def read_all(sock: socket.socket) -> str:
    """The body the server sends until it closes the connection, or is silent for 3 s."""
    sock.settimeout(3)
    chunks = []
    with contextlib.suppress(TimeoutError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    sock.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    return dechunked(body).decode().replace("\r\n", "\n")


def dechunked(body: bytes) -> bytes:
    """HTTP/1.1 chunked transfer coding, undone (as far as it was received)."""
    data = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        data, body = data + rest[:size], rest[size + 2 :]
    return data


async def test_a_recipient_gets_its_notifications_pushed_and_resumed(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    settings = await fresh_settings(infra, "notification_service")
    async with served(notification_app(settings)) as service:
        parties = Parties()
        me = as_(parties.freelancer_id)
        missing = await service.client.get("/notifications/stream", headers=me)
        assert missing.status_code == 400
        assert "recipient_id is required" in missing.json()["message"]
        path = f"/notifications/stream?recipient_id={parties.freelancer_id}"
        nobody = await service.client.get(path)
        assert (nobody.status_code, nobody.json()["error"]) == (401, "unauthenticated")
        # Another party's inbox is refused from the query alone (a list is the reader's own).
        other = await service.client.get(path, headers=as_(parties.client_id))
        assert (other.status_code, other.json()["error"]) == (403, "forbidden")
        async with stream(service.client, path, me) as inbox:
            await send_event(producer, offer_event("OfferExtended", parties))
            item = await inbox.next()
        [published] = await probe.wait_for(
            of_type("NotificationCreated", recipient_id=parties.freelancer_id)
        )
        assert item.event == "NotificationCreated" and item.id is not None and item.id.isdigit()
        assert item.data == published.raw.decode()
        assert item.json()["kind"] == "offer_received"
        # Withdrawn while the freelancer was away: resumed from the database.
        await send_event(producer, offer_event("OfferWithdrawn", parties, version=1))
        await probe.wait_for(
            of_type("NotificationCreated", recipient_id=parties.freelancer_id), count=2
        )
        async with stream(service.client, path, {"Last-Event-ID": item.id, **me}) as again:
            missed = await again.next()
            await again.nothing_more(1)
        assert missed.json()["kind"] == "offer_withdrawn"
        assert int(missed.id or 0) > int(item.id)
