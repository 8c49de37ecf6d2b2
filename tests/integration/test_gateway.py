"""The gateway against the real broker: a valid command is published once, keyed and
headed as SPEC §4 says; an invalid one gets every field error and publishes nothing; with
Kafka away the answer is 503; outcomes are told by command id."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from contracts import topics
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, hourly_terms, new_id, of_type

pytestmark = pytest.mark.integration


@asynccontextmanager
async def gateway(bootstrap: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(GatewaySettings(kafka_bootstrap_servers=bootstrap, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


async def healthy(client: httpx.AsyncClient) -> None:
    for _ in range(200):
        if (await client.get("/health")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"gateway not healthy: {(await client.get('/health')).json()}")


@pytest.fixture
async def client(infra: Endpoints) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(infra.kafka_bootstrap_servers) as client:
        await healthy(client)
        yield client


@pytest.fixture
async def commands(infra: Endpoints) -> AsyncIterator[Probe]:
    probe = Probe(infra.kafka_bootstrap_servers, list(topics.COMMANDS))
    await probe.start()
    yield probe
    await probe.stop()


def as_actor(actor: str) -> dict[str, str]:
    return {"X-Actor-Id": actor}


JSON = {"Content-Type": "application/json"}


def without_actor(command: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in command.items() if k != "actor_id"}


async def test_each_command_is_published_to_its_topic_keyed_by_its_aggregate(
    client: httpx.AsyncClient, commands: Probe
) -> None:
    parties = Parties()
    contract_id, recipient = new_id("contract"), parties.freelancer_id
    sent = [
        (
            parties.client_id,
            without_actor(parties.extend()),
            topics.OFFERS_COMMANDS,
            parties.offer_id,
        ),
        (
            parties.freelancer_id,
            {
                "type": "PostMessage",
                "offer_id": parties.offer_id,
                "message_id": new_id("m"),
                "text": "Could we do 50/h?",
            },
            topics.NEGOTIATIONS_COMMANDS,
            parties.offer_id,
        ),
        (
            parties.freelancer_id,
            {
                "type": "LogTime",
                "contract_id": contract_id,
                "entry_id": new_id("e"),
                "work_date": "2026-12-10",
                "hours": "7.50",
            },
            topics.CONTRACTS_COMMANDS,
            contract_id,
        ),
        (
            recipient,
            {
                "type": "MarkNotificationsRead",
                "recipient_id": recipient,
                "notification_ids": ["n-1", "n-2"],
            },
            topics.NOTIFICATIONS_COMMANDS,
            recipient,
        ),
    ]
    for actor, body, topic, key in sent:
        response = await client.post("/commands", json=body, headers=as_actor(actor))
        assert response.status_code == 202, response.text
        command_id = response.json()["command_id"]
        assert response.headers["location"] == f"/commands/{command_id}"
        [record] = await commands.wait_for(of_type(body["type"], command_id=command_id))
        assert record.topic == topic
        assert record.key == key
        assert record.headers == {"type": body["type"]}
        assert record.value["actor_id"] == actor  # filled from the header
        assert {k: record.value[k] for k in body} == body
    await commands.quiet(1.0)
    ids = [s.value["command_id"] for s in commands.seen if isinstance(s.value, dict)]
    assert len(ids) == len(set(ids)) == len(sent), "each command published exactly once"


async def test_a_given_command_id_and_matching_actor_id_are_kept(
    client: httpx.AsyncClient, commands: Probe
) -> None:
    parties = Parties()
    body = parties.extend()
    response = await client.post("/commands", json=body, headers=as_actor(parties.client_id))
    assert response.status_code == 202
    assert response.json() == {"command_id": body["command_id"]}
    [record] = await commands.wait_for(of_type("ExtendOffer", command_id=body["command_id"]))
    assert record.value["actor_id"] == parties.client_id


async def test_an_invalid_command_gets_every_field_error_and_nothing_is_published(
    client: httpx.AsyncClient, commands: Probe
) -> None:
    parties = Parties()
    terms = hourly_terms(
        title="   ",
        hourly_rate="-5",
        weekly_limit_hours=200,
        start_date="2020-01-01",
        end_date="2019-12-31",
        surprise="field",
    )
    body = {**without_actor(parties.extend(terms)), "freelancer_id": parties.client_id}
    response = await client.post("/commands", json=body, headers=as_actor(parties.client_id))
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["error"] == "invalid_command"
    fields = {e["field"]: e["message"] for e in answer["errors"]}
    assert {
        "terms.title",
        "terms.hourly_rate",
        "terms.weekly_limit_hours",
        "terms.surprise",
        "freelancer_id",
    } <= set(fields), fields
    assert fields["terms.surprise"] == "is not a field of hourly terms"
    assert answer["message"] == f"ExtendOffer is invalid: {len(answer['errors'])} problems"

    # A valid command sent after it is the first (and only) thing on the commands topics.
    marker = without_actor(Parties().extend())
    marker_actor = marker["client_id"]
    assert (await client.post("/commands", json=marker, headers=as_actor(marker_actor))).is_success
    await commands.wait_for(of_type("ExtendOffer", offer_id=marker["offer_id"]))
    assert [s.value["offer_id"] for s in commands.seen] == [marker["offer_id"]]


async def test_dates_before_today_are_refused_here_not_only_by_the_service(
    client: httpx.AsyncClient,
) -> None:
    parties = Parties()
    body = parties.extend(hourly_terms(start_date="2021-01-01", end_date="2021-02-01"))
    response = await client.post("/commands", json=body, headers=as_actor(parties.client_id))
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["terms.start_date"]


@pytest.mark.parametrize(
    ("body", "error", "detail"),
    [
        (b"{not json", "invalid_json", "the body is not JSON: Expecting property name"),
        (b"[1, 2]", "invalid_json", "the body must be a JSON object (a command)"),
        (b'{"offer_id": "o-1"}', "invalid_command", "type is required"),
        (b'{"type": "DeleteOffer"}', "invalid_command", "type must be one of ExtendOffer"),
    ],
)
async def test_what_is_not_a_command_is_refused_with_a_reason(
    client: httpx.AsyncClient, body: bytes, error: str, detail: str
) -> None:
    response = await client.post("/commands", content=body, headers=JSON | as_actor("client-ann"))
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == error
    told = answer["message"] + "".join(f" {e['field']} {e['message']}" for e in answer["errors"])
    assert detail in told, told


async def test_the_acting_party_comes_from_the_header(client: httpx.AsyncClient) -> None:
    parties = Parties()
    missing = await client.post("/commands", json=parties.extend())
    assert missing.status_code == 401
    assert "X-Actor-Id" in missing.json()["message"]
    someone_else = await client.post(
        "/commands", json=parties.extend(), headers=as_actor("mallory")
    )
    assert someone_else.status_code == 403
    assert someone_else.json()["errors"] == [
        {"field": "actor_id", "message": "must be 'mallory' or left out"}
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_with_kafka_away_a_command_gets_503_saying_so() -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    async with gateway(nowhere, publish_timeout_seconds=1.0) as client:
        parties = Parties()
        response = await client.post(
            "/commands", json=parties.extend(), headers=as_actor(parties.client_id)
        )
        assert response.status_code == 503
        answer = response.json()
        assert answer["error"] == "kafka_unavailable"
        assert (
            f"Kafka at {nowhere} is not answering, so the command was not sent"
            in (answer["message"])
        )
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        # An invalid command is still told apart from an outage: 400, not 503.
        bad = await client.post("/commands", content=b"{", headers=JSON | as_actor("client-ann"))
        assert bad.status_code == 400


async def test_the_outcome_of_a_command_is_told_by_its_id(
    client: httpx.AsyncClient, producer: Producer
) -> None:
    """A service's answer (published here as the service would) reaches GET /commands/{id}."""
    refused_id, done_id = str(uuid.uuid4()), str(uuid.uuid4())
    pending = await client.get(f"/commands/{refused_id}", headers=as_actor("client-ann"))
    assert pending.json() == {"command_id": refused_id, "status": "pending"}

    rejection = {
        "type": "CommandRejected",
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-12-01T12:00:00Z",
        "causation_id": refused_id,
        "command_id": refused_id,
        "command_type": "AcceptOffer",
        "actor_id": "client-ann",
        "code": "not_authorized",
        "message": "only the offer's freelancer may accept it",
        "errors": [],
    }
    waiting = asyncio.create_task(
        client.get(f"/commands/{refused_id}?wait=10", headers=as_actor("client-ann"))
    )
    await asyncio.sleep(0.3)
    await producer.send(topics.COMMANDS_REJECTED, rejection, "offer-1")
    answer = (await waiting).json()
    assert answer == {"command_id": refused_id, "status": "rejected", "rejection": rejection}
    # Another party's refusal is not theirs to read.
    other = await client.get(f"/commands/{refused_id}", headers=as_actor("free-bob"))
    assert other.json()["status"] == "pending"

    # A command another gateway (or the CLI) published: its actor is read from its topic.
    posted = {"type": "PostMessage", "command_id": done_id, "actor_id": "free-bob"}
    await producer.send(topics.NEGOTIATIONS_COMMANDS, posted, "offer-1")
    event = {"type": "MessagePosted", "causation_id": done_id, "offer_id": "offer-1"}
    await producer.send(topics.NEGOTIATIONS_EVENTS, event, "offer-1")
    done = await client.get(f"/commands/{done_id}?wait=10", headers=as_actor("free-bob"))
    assert done.json() == {"command_id": done_id, "status": "done", "event": event}
    # The event is the command's actor's to read, no one else's.
    theirs = await client.get(f"/commands/{done_id}", headers=as_actor("client-ann"))
    assert theirs.json() == {"command_id": done_id, "status": "pending"}
    assert json.loads(done.text)["event"]["type"] == "MessagePosted"


async def test_a_malformed_body_or_parameter_is_a_4xx_with_the_reason_never_a_500(
    client: httpx.AsyncClient,
) -> None:
    me = JSON | as_actor("client-ann")
    deep = await client.post("/commands", content=b"[" * 200_000, headers=me)
    assert (deep.status_code, deep.json()["error"]) == (400, "invalid_json")
    assert "too deeply" in deep.json()["message"]
    for wait in ("²", "nan", "soon"):
        outcome = await client.get(f"/commands/{uuid.uuid4()}?wait={wait}", headers=me)
        assert outcome.status_code == 400, wait
        assert "wait must be a number of seconds" in outcome.json()["message"]
    not_utf8 = await client.post("/commands", content=b'{"type": "\xff"}', headers=me)
    assert not_utf8.status_code == 400


async def test_the_body_limit_holds_while_the_body_is_read(client: httpx.AsyncClient) -> None:
    me = JSON | as_actor("client-ann")
    declared = await client.post(
        "/commands", content=b"{}", headers=me | {"Content-Length": str(2 * 1024 * 1024)}
    )
    assert (declared.status_code, declared.json()["error"]) == (413, "too_large")
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        # No Content-Length (chunked): the gateway must stop at the limit, not at the end.
        nonlocal sent
        yield b'{"type": "PostMessage", "text": "'
        for _ in range(64):  # 4 MiB, if it were all read
            sent += 65_536
            yield b"x" * 65_536
        yield b'"}'

    chunked = await client.post("/commands", content=endless(), headers=me)
    assert (chunked.status_code, chunked.json()["error"]) == (413, "too_large")
    assert sent <= 2 * 1024 * 1024, f"the gateway read {sent} bytes of a refused body"


async def test_a_command_is_json_from_the_gateways_own_page_or_no_browser_at_all(
    infra: Endpoints,
) -> None:
    allowed = frozenset({"https://offers.example"})
    async with gateway(infra.kafka_bootstrap_servers, allowed_origins=allowed) as client:
        await healthy(client)
        parties = Parties()
        me = as_actor(parties.client_id)
        body = json.dumps(parties.extend()).encode()
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = me | ({"Content-Type": content_type} if content_type else {})
            response = await client.post("/commands", content=body, headers=headers)
            assert (response.status_code, response.json()["error"]) == (
                415,
                "unsupported_media_type",
            ), content_type
        evil = await client.post(
            "/commands", content=body, headers=me | JSON | {"Origin": "https://evil.example"}
        )
        assert (evil.status_code, evil.json()["error"]) == (403, "cross_origin")
        assert "https://evil.example" in evil.json()["message"]
        for origin in ("http://gateway", "https://offers.example", None):
            command = Parties(client_id=parties.client_id).extend()
            headers = me | JSON | ({"Origin": origin} if origin else {})
            response = await client.post("/commands", json=command, headers=headers)
            assert response.status_code == 202, (origin, response.text)


async def test_the_page_cannot_be_framed_or_run_another_sites_script(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/", "/app.js", "/openapi.json"):
        response = await client.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"


async def test_commands_are_rate_limited_per_actor_with_retry_after(infra: Endpoints) -> None:
    settings = {"command_burst": 3, "commands_per_minute": 6.0}
    async with gateway(infra.kafka_bootstrap_servers, **settings) as client:
        await healthy(client)
        flooder, other = Parties(), Parties()
        answers = [
            await client.post(
                "/commands",
                json=Parties(client_id=flooder.client_id).extend(),
                headers=as_actor(flooder.client_id),
            )
            for _ in range(4)
        ]
        assert [a.status_code for a in answers] == [202, 202, 202, 429]
        limited = answers[-1]
        assert limited.json()["error"] == "too_many_commands"
        assert 1 <= int(limited.headers["retry-after"]) <= 10  # one command per 10 s
        assert "GATEWAY_COMMANDS_PER_MINUTE" in limited.json()["message"]
        # Another actor is not held up by the first.
        theirs = await client.post(
            "/commands", json=other.extend(), headers=as_actor(other.client_id)
        )
        assert theirs.status_code == 202
