"""messaging_service against the real Kafka and database: offer events are published
straight to offers.events (no offer_service needed), commands to negotiations.commands."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from contracts import format_utc, topics
from services.messaging_service.app import create_app
from tests.conftest import UNKNOWN_OFFER_WAIT_SECONDS as WAIT_SECONDS
from tests.conftest import fresh_settings
from tests.infrastructure import Endpoints
from tests.kit import (
    Parties,
    Probe,
    Producer,
    as_,
    command,
    hourly_terms,
    new_id,
    of_type,
    running,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def api(infra: Endpoints) -> AsyncIterator[httpx.AsyncClient]:
    settings = await fresh_settings(infra, "messaging_service")
    async with running(create_app(settings)) as client:
        yield client


def now_text(delta: timedelta = timedelta()) -> str:
    return format_utc(datetime.now(UTC) + delta)


def offer_event(type_: str, parties: Parties, version: int = 1, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": type_,
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": now_text(),
        "causation_id": str(uuid.uuid4()),
        "offer_id": parties.offer_id,
        "version": version,
        "client_id": parties.client_id,
        "freelancer_id": parties.freelancer_id,
    }
    if type_ in ("OfferExtended", "OfferChanged"):
        event.update(terms=hourly_terms(), message=None, expires_at=now_text(timedelta(days=30)))
    if type_ == "OfferExtended":
        event.update(job_id=parties.job_id, proposal_id=new_id("prop"))
    if type_ == "OfferChanged":
        event["in_response_to"] = None
    if type_ == "OfferDeclined":
        event["proposal_id"] = new_id("prop")
    if type_ == "OfferAccepted":
        event.update(terms=hourly_terms(), accepted_at=now_text())
    event.update(fields)
    return event


async def send_event(producer: Producer, event: dict[str, Any]) -> None:
    await producer.send(topics.OFFERS_EVENTS, event, key=event["offer_id"])


async def send_command(producer: Producer, message: dict[str, Any] | bytes, key: str) -> None:
    await producer.send(topics.NEGOTIATIONS_COMMANDS, message, key=key)


async def thread_of(api: httpx.AsyncClient, parties: Parties) -> httpx.Response:
    """The offer's thread, as its client reads it."""
    return await api.get(f"/threads/{parties.offer_id}/messages", headers=as_(parties.client_id))


async def open_thread(producer: Producer, parties: Parties) -> None:
    await send_event(producer, offer_event("OfferExtended", parties))


def post(
    parties: Parties, actor: str, text: str = "Could we talk about the rate?"
) -> dict[str, Any]:
    return command(
        "PostMessage", actor, offer_id=parties.offer_id, message_id=str(uuid.uuid4()), text=text
    )


def propose(parties: Parties, actor: str, changes: dict[str, Any]) -> dict[str, Any]:
    return command(
        "ProposeTerms",
        actor,
        offer_id=parties.offer_id,
        message_id=str(uuid.uuid4()),
        changes=changes,
        text="How about this?",
    )


async def test_a_message_from_a_party_is_stored_and_published_once(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await open_thread(producer, parties)
    message = post(parties, parties.freelancer_id)
    for _ in range(3):
        await send_command(producer, message, parties.offer_id)
    [posted] = await probe.wait_for(of_type("MessagePosted", offer_id=parties.offer_id))
    assert posted.key == parties.offer_id
    assert posted.headers["type"] == "MessagePosted"
    assert posted.value["message_id"] == message["message_id"]
    assert posted.value["sender_id"] == parties.freelancer_id
    assert posted.value["causation_id"] == message["command_id"]
    await probe.quiet()
    assert len(probe.matching(of_type("MessagePosted", offer_id=parties.offer_id))) == 1
    assert not probe.matching(of_type("CommandRejected", command_id=message["command_id"]))

    response = await api.get(
        f"/threads/{parties.offer_id}/messages", headers=as_(parties.client_id)
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "pending" and body["next_cursor"] is None
    assert [(i["message_id"], i["kind"], i["text"]) for i in body["items"]] == [
        (message["message_id"], "message", message["text"])
    ]


async def test_a_repeated_message_id_is_stored_once(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await open_thread(producer, parties)
    first = post(parties, parties.client_id)
    again = {**first, "command_id": str(uuid.uuid4())}  # a retry with a new command_id
    await send_command(producer, first, parties.offer_id)
    await send_command(producer, again, parties.offer_id)
    await probe.wait_for(of_type("MessagePosted", offer_id=parties.offer_id))
    await probe.quiet()
    assert len(probe.matching(of_type("MessagePosted", offer_id=parties.offer_id))) == 1
    body = (await thread_of(api, parties)).json()
    assert len(body["items"]) == 1


async def test_a_stranger_is_not_authorized(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await open_thread(producer, parties)
    message = post(parties, new_id("stranger"))
    await send_command(producer, message, parties.offer_id)
    [rejected] = await probe.wait_for(of_type("CommandRejected", command_id=message["command_id"]))
    assert rejected.value["code"] == "not_authorized"
    assert rejected.value["command_type"] == "PostMessage"
    assert rejected.key == parties.offer_id
    assert not probe.matching(of_type("MessagePosted", offer_id=parties.offer_id))


async def test_a_bad_proposal_is_refused_with_every_problem_under_changes(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await open_thread(producer, parties)
    start = datetime.now(UTC).date() + timedelta(days=5)
    proposal = propose(
        parties,
        parties.freelancer_id,
        {"end_date": (start - timedelta(days=1)).isoformat(), "total_amount": "100.00"},
    )
    await send_command(producer, proposal, parties.offer_id)
    [rejected] = await probe.wait_for(of_type("CommandRejected", command_id=proposal["command_id"]))
    assert rejected.value["code"] == "invalid_command"
    fields = {error["field"] for error in rejected.value["errors"]}
    assert "changes.end_date" in fields
    assert any(field.startswith("changes.total_amount") for field in fields), fields
    assert all(field.startswith("changes") for field in fields), fields


async def test_a_proposal_lists_its_differences(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await open_thread(producer, parties)
    proposal = propose(
        parties, parties.freelancer_id, {"hourly_rate": "55.00", "weekly_limit_hours": 20}
    )
    await send_command(producer, proposal, parties.offer_id)
    [proposed] = await probe.wait_for(of_type("TermsProposed", offer_id=parties.offer_id))
    assert proposed.value["differences"] == [
        {"field": "hourly_rate", "current": "45.00", "proposed": "55.00"},
        {"field": "weekly_limit_hours", "current": 30, "proposed": 20},
    ]
    assert proposed.value["changes"] == {"hourly_rate": "55.00", "weekly_limit_hours": 20}
    body = (await thread_of(api, parties)).json()
    [item] = body["items"]
    assert item["kind"] == "terms_proposal"
    assert item["differences"] == proposed.value["differences"]
    assert item["answered_by_version"] is None


async def test_a_command_that_overtakes_its_offer_extended_is_accepted(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    message = post(parties, parties.client_id)
    await send_command(producer, message, parties.offer_id)
    await asyncio.sleep(1.0)
    await open_thread(producer, parties)
    await probe.wait_for(of_type("MessagePosted", offer_id=parties.offer_id))
    assert not probe.matching(of_type("CommandRejected", command_id=message["command_id"]))


async def test_an_unknown_offer_is_refused_after_the_wait(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    message = post(parties, parties.client_id)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    await send_command(producer, message, parties.offer_id)
    [rejected] = await probe.wait_for(of_type("CommandRejected", command_id=message["command_id"]))
    assert rejected.value["code"] == "unknown_offer"
    assert loop.time() - sent >= WAIT_SECONDS * 0.9
    assert (await thread_of(api, parties)).status_code == 404


async def test_acceptance_closes_the_thread_once_and_later_messages_are_refused(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await open_thread(producer, parties)
    accepted = offer_event("OfferAccepted", parties)
    await send_event(producer, accepted)
    await send_event(producer, accepted)  # redelivered
    [closed] = await probe.wait_for(of_type("ThreadClosed", offer_id=parties.offer_id))
    assert closed.value["reason"] == "accepted"
    assert closed.value["causation_id"] == accepted["event_id"]

    late = post(parties, parties.freelancer_id, "One more thing")
    await send_command(producer, late, parties.offer_id)
    [rejected] = await probe.wait_for(of_type("CommandRejected", command_id=late["command_id"]))
    assert rejected.value["code"] == "thread_closed"
    assert rejected.value["status"] == "accepted"
    await probe.quiet()
    assert len(probe.matching(of_type("ThreadClosed", offer_id=parties.offer_id))) == 1
    body = (await thread_of(api, parties)).json()
    assert body["status"] == "accepted" and body["closed"] is True and body["items"] == []


async def test_a_closing_event_before_offer_extended_creates_the_thread_closed(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await send_event(producer, offer_event("OfferWithdrawn", parties, reason="changed plans"))
    await open_thread(producer, parties)  # arrives late
    [closed] = await probe.wait_for(of_type("ThreadClosed", offer_id=parties.offer_id))
    assert closed.value["reason"] == "withdrawn"
    message = post(parties, parties.client_id)
    await send_command(producer, message, parties.offer_id)
    [rejected] = await probe.wait_for(of_type("CommandRejected", command_id=message["command_id"]))
    assert rejected.value["code"] == "thread_closed"
    assert len(probe.matching(of_type("ThreadClosed", offer_id=parties.offer_id))) == 1


async def test_the_read_api_pages_back_from_the_newest(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await open_thread(producer, parties)
    sent = []
    for n in range(5):
        actor = parties.client_id if n % 2 == 0 else parties.freelancer_id
        message = post(parties, actor, f"message {n}")
        await send_command(producer, message, parties.offer_id)
        await probe.wait_for(of_type("MessagePosted", message_id=message["message_id"]))
        sent.append(message["message_id"])

    url, me = f"/threads/{parties.offer_id}/messages", as_(parties.freelancer_id)
    first = (await api.get(url, params={"limit": 2}, headers=me)).json()
    assert [i["message_id"] for i in first["items"]] == sent[3:5]
    assert first["next_cursor"] is not None
    second = (
        await api.get(url, params={"limit": 2, "before": first["next_cursor"]}, headers=me)
    ).json()
    assert [i["message_id"] for i in second["items"]] == sent[1:3]
    third = (
        await api.get(url, params={"limit": 2, "before": second["next_cursor"]}, headers=me)
    ).json()
    assert [i["message_id"] for i in third["items"]] == sent[0:1]
    assert third["next_cursor"] is None
    everything = (await api.get(url, headers=me)).json()
    assert [i["message_id"] for i in everything["items"]] == sent
    assert [i["text"] for i in everything["items"]] == [f"message {n}" for n in range(5)]
    assert everything["items"][1]["sender_id"] == parties.freelancer_id

    assert (await api.get(url, params={"limit": 0}, headers=me)).status_code == 400
    assert (await api.get(url, params={"limit": "²"}, headers=me)).status_code == 400
    assert (await api.get(url, params={"before": "nonsense"}, headers=me)).status_code == 400
    missing = await api.get(f"/threads/{new_id('offer')}/messages", headers=me)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_an_answer_links_the_proposal_to_the_new_version(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await open_thread(producer, parties)
    proposal = propose(parties, parties.freelancer_id, {"hourly_rate": "55.00"})
    await send_command(producer, proposal, parties.offer_id)
    await probe.wait_for(of_type("TermsProposed", message_id=proposal["message_id"]))

    changed = offer_event(
        "OfferChanged",
        parties,
        2,
        terms=hourly_terms(hourly_rate="55.00"),
        in_response_to=proposal["message_id"],
    )
    await send_event(producer, changed)
    url = f"/threads/{parties.offer_id}/messages"
    for _ in range(50):
        body = (await api.get(url, headers=as_(parties.client_id))).json()
        if body["version"] == 2 and body["items"][0]["answered_by_version"] == 2:
            break
        await asyncio.sleep(0.1)
    assert body["version"] == 2
    assert body["items"][0]["answered_by_version"] == 2

    # The thread now negotiates from version 2's terms.
    follow_up = propose(parties, parties.freelancer_id, {"hourly_rate": "60.00"})
    await send_command(producer, follow_up, parties.offer_id)
    [proposed] = await probe.wait_for(of_type("TermsProposed", message_id=follow_up["message_id"]))
    assert proposed.value["differences"] == [
        {"field": "hourly_rate", "current": "55.00", "proposed": "60.00"}
    ]


async def test_garbage_is_dead_lettered_or_skipped_and_the_consumers_carry_on(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await send_event(producer, {"type": "OfferExtended", "offer_id": parties.offer_id})
    await producer.send(topics.OFFERS_EVENTS, b"not json at all", key=parties.offer_id)
    await open_thread(producer, parties)
    garbage = b"\x00{ this is not a command"
    await send_command(producer, garbage, parties.offer_id)
    message = post(parties, parties.client_id)
    await send_command(producer, message, parties.offer_id)

    [dead] = await probe.wait_for(
        lambda seen: seen.topic == topics.COMMANDS_DEAD_LETTER and seen.raw == garbage
    )
    assert dead.headers["source_topic"] == topics.NEGOTIATIONS_COMMANDS
    assert {"source_partition", "source_offset", "error"} <= dead.headers.keys()
    await probe.wait_for(of_type("MessagePosted", message_id=message["message_id"]))


async def test_an_invalid_command_is_refused_once(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await open_thread(producer, parties)
    blank = post(parties, parties.client_id, "   ")
    blank["unexpected"] = True
    for _ in range(2):
        await send_command(producer, blank, parties.offer_id)
    [rejected] = await probe.wait_for(of_type("CommandRejected", command_id=blank["command_id"]))
    assert rejected.value["code"] == "invalid_command"
    assert {e["field"] for e in rejected.value["errors"]} >= {"text", "unexpected"}
    await probe.quiet()
    assert len(probe.matching(of_type("CommandRejected", command_id=blank["command_id"]))) == 1
