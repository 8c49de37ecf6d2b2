"""offer_service against the real broker and the real database (SPEC §3-§6)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from contracts import topics
from services.offer_service.app import create_app
from tests.conftest import fresh_settings
from tests.infrastructure import Endpoints
from tests.kit import (
    Parties,
    Probe,
    Producer,
    Seen,
    as_,
    command,
    fixed_terms,
    hourly_terms,
    new_id,
    of_type,
    running,
    today,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def app(infra: Endpoints) -> Starlette:
    return create_app(await fresh_settings(infra, "offer_service"))


@pytest.fixture(scope="module")
async def api(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as client:
        yield client


async def send(
    producer: Producer, message: dict[str, Any], topic: str = topics.OFFERS_COMMANDS
) -> None:
    key = message.get("offer_id") or message.get("contract_id") or "x"
    await producer.send(topic, message, key)


def answers_to(*commands: dict[str, Any]) -> Callable[[Seen], bool]:
    """The event or the rejection that each of these commands caused."""
    ids = {c["command_id"] for c in commands}

    def predicate(seen: Seen) -> bool:
        value = seen.value
        return isinstance(value, dict) and (
            value.get("command_id") in ids
            or (value.get("type") != "CommandRejected" and value.get("causation_id") in ids)
        )

    return predicate


def rejected(command_id: str, **fields: Any) -> Any:
    return of_type("CommandRejected", command_id=command_id, **fields)


async def extended(producer: Producer, probe: Probe, parties: Parties, **kw: Any) -> Seen:
    await send(producer, parties.extend(**kw))
    [event] = await probe.wait_for(of_type("OfferExtended", offer_id=parties.offer_id))
    return event


async def test_extend_publishes_offer_extended_with_whole_terms_and_serves_it(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    extend = parties.extend(message="Looking forward to working with you")
    await send(producer, extend)
    [seen] = await probe.wait_for(of_type("OfferExtended", offer_id=parties.offer_id))

    assert seen.key == parties.offer_id
    assert seen.headers["type"] == "OfferExtended"
    event = seen.value
    assert event["causation_id"] == extend["command_id"]
    assert event["schema_version"] == 1 and event["event_id"] and event["version"] == 1
    assert event["terms"]["hourly_rate"] == "45.00"
    assert event["terms"]["custom_fields"] == {"cost_center": "R&D-12", "billable": True}
    assert event["expires_at"].endswith("Z")

    offer = (await api.get(f"/offers/{parties.offer_id}", headers=as_(parties.client_id))).json()
    assert offer["status"] == "pending"
    assert offer["expires_at"] == event["expires_at"]
    assert [v["version"] for v in offer["versions"]] == [1]
    assert offer["terms"]["title"] == "Checkout redesign"


async def test_invalid_terms_are_refused_with_every_violation(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    yesterday = (today() - timedelta(days=1)).isoformat()
    bad = parties.extend(
        terms=fixed_terms(
            start_date=yesterday,
            total_amount="900.00",
            title="  ",
            end_date=(today() + timedelta(days=400)).isoformat(),
        )
    )
    await send(producer, bad)
    [seen] = await probe.wait_for(rejected(bad["command_id"]))
    rejection = seen.value
    assert rejection["code"] == "invalid_command"
    fields = {error["field"] for error in rejection["errors"]}
    assert {"terms.title", "terms.start_date", "terms.end_date", "terms.total_amount"} <= fields
    read = await api.get(f"/offers/{parties.offer_id}", headers=as_(parties.client_id))
    assert read.status_code == 404


async def test_unreadable_records_are_dead_lettered_and_the_consumer_carries_on(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    key = new_id("offer")
    garbage = [b"not json", b"[1, 2]", b'{"no": "type"}', b'{"type": "LaunchRocket"}']
    for raw in garbage:
        await producer.send(topics.OFFERS_COMMANDS, raw, key)
    dead = await probe.wait_for(
        lambda s: s.topic == topics.COMMANDS_DEAD_LETTER and s.key == key, count=4
    )
    assert [s.raw for s in dead] == garbage
    assert all(s.headers["source_topic"] == topics.OFFERS_COMMANDS for s in dead)
    assert all(s.headers["source_offset"].isdigit() for s in dead)
    assert (
        "unknown" in dead[3].headers["error"].lower() or "LaunchRocket" in dead[3].headers["error"]
    )
    await extended(producer, probe, Parties(offer_id=key))


async def test_only_the_right_party_may_act(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await extended(producer, probe, parties)
    stranger = new_id("stranger")
    wrong: list[dict[str, Any]] = []
    for actor in (parties.freelancer_id, stranger):
        wrong.append(command("ChangeOffer", actor, offer_id=parties.offer_id, terms=hourly_terms()))
        wrong.append(command("WithdrawOffer", actor, offer_id=parties.offer_id))
    for actor in (parties.client_id, stranger):
        wrong.append(command("AcceptOffer", actor, offer_id=parties.offer_id, version=1))
        wrong.append(command("DeclineOffer", actor, offer_id=parties.offer_id))
    # Extending as somebody other than the named client.
    other = Parties()
    extend_as_stranger = other.extend()
    extend_as_stranger["actor_id"] = stranger
    wrong.append(extend_as_stranger)
    for message in wrong:
        await send(producer, message)
    for message in wrong:
        [seen] = await probe.wait_for(rejected(message["command_id"]))
        assert seen.value["code"] == "not_authorized", message["type"]
        assert seen.value["command_type"] == message["type"]
    offer = (await api.get(f"/offers/{parties.offer_id}", headers=as_(parties.client_id))).json()
    assert offer["status"] == "pending" and offer["version"] == 1


async def test_change_makes_a_new_version_and_accept_must_name_it(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    first = await extended(producer, probe, parties)
    change = command(
        "ChangeOffer",
        parties.client_id,
        offer_id=parties.offer_id,
        terms=hourly_terms(hourly_rate="55.00", talent_cloud_id=parties.talent_cloud_id),
        in_response_to="proposal-1",
    )
    await send(producer, change)
    [changed] = await probe.wait_for(of_type("OfferChanged", offer_id=parties.offer_id))
    assert changed.value["version"] == 2
    assert changed.value["in_response_to"] == "proposal-1"
    assert changed.value["expires_at"] >= first.value["expires_at"]

    stale = command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=1)
    await send(producer, stale)
    [refused] = await probe.wait_for(rejected(stale["command_id"]))
    assert refused.value["code"] == "version_mismatch"

    accept = command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=2)
    await send(producer, accept)
    [accepted] = await probe.wait_for(of_type("OfferAccepted", offer_id=parties.offer_id))
    assert accepted.value["terms"]["hourly_rate"] == "55.00"
    [activated] = await probe.wait_for(of_type("ContractActivated", offer_id=parties.offer_id))
    assert activated.value["offer_version"] == 2 and activated.value["job_id"] == parties.job_id
    contract_id = activated.value["contract_id"]
    [member] = await probe.wait_for(
        of_type("TalentCloudMemberAdded", freelancer_id=parties.freelancer_id)
    )
    assert member.key == parties.talent_cloud_id and member.value["contract_id"] == contract_id

    offer = (await api.get(f"/offers/{parties.offer_id}", headers=as_(parties.client_id))).json()
    assert offer["status"] == "accepted"
    assert [v["terms"]["hourly_rate"] for v in offer["versions"]] == ["45.00", "55.00"]
    contract = (await api.get(f"/contracts/{contract_id}", headers=as_(parties.client_id))).json()
    assert contract["status"] == "active" and contract["offer_version"] == 2
    members = (
        await api.get(
            f"/talent-clouds/{parties.talent_cloud_id}/members",
            params={"limit": 200},
            headers=as_(parties.freelancer_id),
        )
    ).json()
    assert (
        parties.freelancer_id in {m["freelancer_id"] for m in members["items"]}
        or members["next_cursor"]
    )


async def test_a_repeated_command_has_no_second_effect(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    extend = parties.extend()
    accept = command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=1)
    for message in (extend, extend, accept, accept, extend):
        await send(producer, message)
    await probe.wait_for(of_type("TalentCloudMemberAdded", freelancer_id=parties.freelancer_id))
    await probe.quiet()
    mine = probe.matching(
        lambda s: (
            isinstance(s.value, dict)
            and (
                s.value.get("offer_id") == parties.offer_id
                or s.value.get("freelancer_id") == parties.freelancer_id
                or s.value.get("command_id") in (extend["command_id"], accept["command_id"])
            )
        )
    )
    types = sorted(s.value["type"] for s in mine)
    assert types == [
        "ContractActivated",
        "OfferAccepted",
        "OfferExtended",
        "TalentCloudMemberAdded",
    ]


async def test_a_repeated_extend_among_new_ones_changes_nothing_and_they_go_through_once(
    app: Starlette,
    api: httpx.AsyncClient,
    producer: Producer,
    probe: Probe,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A new offer is guessed new, not read (services.runtime.batch); a repeat beside new
    # ones makes that guess wrong for its batch, which is handled again, reading.
    first = Parties()
    extend = first.extend()
    await send(producer, extend)
    await probe.wait_for(of_type("OfferExtended", offer_id=first.offer_id))
    app.state.records.cache.clear()  # as after a restart or a rebalance: not known here
    caplog.set_level(logging.INFO, logger="services.runtime.service")
    others = [Parties() for _ in range(6)]
    same_offer = first.extend()  # another command for the same offer: refused
    for message in (
        *(p.extend() for p in others[:3]),
        extend,
        same_offer,
        *(p.extend() for p in others[3:]),
    ):
        await send(producer, message)
    for parties in others:
        await probe.wait_for(of_type("OfferExtended", offer_id=parties.offer_id))
    await probe.wait_for(rejected(same_offer["command_id"], code="offer_exists"))
    await probe.quiet()
    for parties in [first, *others]:
        assert len(probe.matching(of_type("OfferExtended", offer_id=parties.offer_id))) == 1
    assert probe.matching(rejected(extend["command_id"])) == []
    assert len(probe.matching(rejected(same_offer["command_id"]))) == 1
    for parties in others:
        stored = await api.get(f"/offers/{parties.offer_id}", headers=as_(parties.client_id))
        assert stored.status_code == 200 and stored.json()["version"] == 1


async def test_second_extend_with_the_same_offer_id_is_refused(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await extended(producer, probe, parties)
    again = parties.extend()
    await send(producer, again)
    [seen] = await probe.wait_for(rejected(again["command_id"]))
    assert seen.value["code"] == "offer_exists" and seen.value["status"] == "pending"


async def test_withdraw_decline_and_then_nothing_more(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    withdrawn, declined = Parties(), Parties()
    await extended(producer, probe, withdrawn)
    await extended(producer, probe, declined)
    await send(
        producer,
        command(
            "WithdrawOffer", withdrawn.client_id, offer_id=withdrawn.offer_id, reason="Budget cut"
        ),
    )
    await send(
        producer, command("DeclineOffer", declined.freelancer_id, offer_id=declined.offer_id)
    )
    [w] = await probe.wait_for(of_type("OfferWithdrawn", offer_id=withdrawn.offer_id))
    [d] = await probe.wait_for(of_type("OfferDeclined", offer_id=declined.offer_id))
    assert w.value["reason"] == "Budget cut" and d.value["proposal_id"]
    late = command("AcceptOffer", withdrawn.freelancer_id, offer_id=withdrawn.offer_id, version=1)
    await send(producer, late)
    [seen] = await probe.wait_for(rejected(late["command_id"]))
    assert seen.value["code"] == "invalid_state" and seen.value["status"] == "withdrawn"
    unknown = command("WithdrawOffer", "someone", offer_id=new_id("offer"))
    await send(producer, unknown)
    [seen] = await probe.wait_for(rejected(unknown["command_id"]))
    assert seen.value["code"] == "unknown_offer"


async def test_accept_races_withdraw_and_change_exactly_one_wins(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    trials = []
    for i in range(50):
        parties = Parties()
        await send(producer, parties.extend())
        accept = command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=1)
        rival = (
            command("WithdrawOffer", parties.client_id, offer_id=parties.offer_id)
            if i % 2
            else command(
                "ChangeOffer", parties.client_id, offer_id=parties.offer_id, terms=hourly_terms()
            )
        )
        first, second = (accept, rival) if i % 4 < 2 else (rival, accept)
        await asyncio.gather(send(producer, first), send(producer, second))
        trials.append((parties, accept, rival))
    for parties, accept, rival in trials:
        outcomes = await probe.wait_for(answers_to(accept, rival), count=2)
        kinds = sorted(s.value["type"] for s in outcomes)
        assert kinds.count("CommandRejected") == 1, kinds
        offer = (
            await api.get(f"/offers/{parties.offer_id}", headers=as_(parties.client_id))
        ).json()
        if "OfferAccepted" in kinds:
            assert offer["status"] == "accepted"
        else:
            assert offer["status"] in ("withdrawn", "pending")


async def test_log_time_rules(api: httpx.AsyncClient, producer: Producer, probe: Probe) -> None:
    parties = Parties()
    await extended(producer, probe, parties, terms=hourly_terms(weekly_limit_hours=10))
    await send(
        producer,
        command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=1),
    )
    [activated] = await probe.wait_for(of_type("ContractActivated", offer_id=parties.offer_id))
    contract_id = activated.value["contract_id"]
    start = today() + timedelta(days=5)
    monday = start + timedelta(days=7 - start.weekday())

    def log(day: Any, hours: str, actor: str | None = None) -> dict[str, Any]:
        return command(
            "LogTime",
            actor or parties.freelancer_id,
            contract_id=contract_id,
            entry_id=new_id("entry"),
            work_date=day.isoformat(),
            hours=hours,
        )

    before_start = log(start - timedelta(days=1), "2.00")
    ok = log(monday, "8.00")
    over = log(monday + timedelta(days=1), "3.00")
    fits = log(monday + timedelta(days=1), "2.00")
    stranger = log(monday, "1.00", actor=parties.client_id)
    for message in (before_start, ok, over, fits, stranger, ok):
        await send(producer, message, topics.CONTRACTS_COMMANDS)
    assert (await probe.wait_for(rejected(before_start["command_id"])))[0].value[
        "code"
    ] == "outside_contract_dates"
    assert (await probe.wait_for(rejected(over["command_id"])))[0].value[
        "code"
    ] == "weekly_limit_exceeded"
    assert (await probe.wait_for(rejected(stranger["command_id"])))[0].value[
        "code"
    ] == "not_authorized"
    logged = await probe.wait_for(of_type("TimeLogged", contract_id=contract_id), count=2)
    await probe.quiet()
    assert len(probe.matching(of_type("TimeLogged", contract_id=contract_id))) == 2
    assert {s.value["hours"] for s in logged} == {"8.00", "2.00"}
    contract = (await api.get(f"/contracts/{contract_id}", headers=as_(parties.client_id))).json()
    assert sum(float(h) for h in contract["hours_by_week"].values()) == 10.0
    # Each entry is a document of its own, listed with the contract and paged on their own.
    shown = {(e["entry_id"], e["hours"]) for e in contract["time_entries"]}
    assert shown == {(ok["entry_id"], "8.00"), (fits["entry_id"], "2.00")}
    assert contract["more_time_entries"] is False
    entries = f"/contracts/{contract_id}/time-entries"
    freelancer = as_(parties.freelancer_id)
    first = (await api.get(entries, params={"limit": 1}, headers=freelancer)).json()
    cursor = {"cursor": first["next_cursor"]}
    rest = (await api.get(entries, params=cursor, headers=freelancer)).json()
    paged = [e["entry_id"] for e in first["items"] + rest["items"]]
    assert paged == [ok["entry_id"], fits["entry_id"]] and rest["next_cursor"] is None
    # A stranger gets what an unknown contract gets.
    assert (await api.get(entries, headers=as_("stranger-1"))).status_code == 404
    assert (await api.get(entries)).status_code == 401  # no actor
    # A cursor at the end of the calendar ["9999-12-31T23:59:59+00:00", "x"]: an empty page.
    hostile = {"cursor": "WyI5OTk5LTEyLTMxVDIzOjU5OjU5KzAwOjAwIiwgIngiXQ=="}
    beyond = await api.get(entries, params=hostile, headers=freelancer)
    assert beyond.status_code == 200 and beyond.json()["items"] == []
    unknown = await api.get("/contracts/no-such-contract/time-entries", headers=freelancer)
    assert unknown.status_code == 404


async def test_fixed_price_contracts_take_no_time(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await extended(producer, probe, parties, terms=fixed_terms())
    await send(
        producer,
        command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=1),
    )
    [activated] = await probe.wait_for(of_type("ContractActivated", offer_id=parties.offer_id))
    entry = command(
        "LogTime",
        parties.freelancer_id,
        contract_id=activated.value["contract_id"],
        entry_id=new_id("entry"),
        work_date=(today() + timedelta(days=6)).isoformat(),
        hours="1.00",
    )
    await send(producer, entry, topics.CONTRACTS_COMMANDS)
    [seen] = await probe.wait_for(rejected(entry["command_id"]))
    assert seen.value["code"] == "not_hourly"
    assert not probe.matching(
        of_type("TalentCloudMemberAdded", freelancer_id=parties.freelancer_id)
    )


async def test_read_api_lists_paginates_and_404s(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    client_id = new_id("client")
    offers = [Parties(client_id=client_id) for _ in range(5)]
    for parties in offers:
        await send(producer, parties.extend())
    await probe.wait_for(
        lambda s: (
            isinstance(s.value, dict)
            and s.value.get("type") == "OfferExtended"
            and s.value.get("client_id") == client_id
        ),
        count=5,
    )
    seen_ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"client_id": client_id, "status": "pending", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/offers", params=params, headers=as_(client_id))).json()
        seen_ids += [item["offer_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen_ids) == sorted(p.offer_id for p in offers)
    me = as_(client_id)
    missing = await api.get("/offers/nope", headers=me)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert (await api.get("/contracts/nope", headers=me)).status_code == 404
    bad = await api.get("/offers", params={"client_id": client_id, "limit": 10_000}, headers=me)
    assert bad.status_code == 400 and "limit" in bad.json()["message"]
    superscript = await api.get(
        "/offers", params={"client_id": client_id, "limit": "²"}, headers=me
    )
    assert superscript.status_code == 400 and "limit" in superscript.json()["message"]
    everyone = await api.get("/offers", headers=me)
    assert everyone.status_code == 403 and "client_id" in everyone.json()["message"]
    assert (await api.get("/health")).json()["status"] == "ok"
    assert (
        json.loads(
            (
                await api.get(
                    "/offers", params={"client_id": client_id, "status": "bogus"}, headers=me
                )
            ).text
        )["error"]
        == "bad_request"
    )


async def test_a_freelancer_joins_a_talent_cloud_once_whatever_the_contracts(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    freelancer, client = new_id("free"), new_id("client")  # one client: one cloud
    first = Parties(client_id=client, freelancer_id=freelancer)
    second = Parties(client_id=client, freelancer_id=freelancer)
    for parties in (first, second):
        await extended(producer, probe, parties)
        accept = command("AcceptOffer", freelancer, offer_id=parties.offer_id, version=1)
        await send(producer, accept)
        await probe.wait_for(of_type("ContractActivated", offer_id=parties.offer_id))
    await probe.quiet()
    joined = probe.matching(of_type("TalentCloudMemberAdded", freelancer_id=freelancer))
    assert len(joined) == 1
    members = (
        await api.get(
            f"/talent-clouds/{first.talent_cloud_id}/members",
            params={"limit": 200},
            headers=as_(freelancer),
        )
    ).json()
    assert [m["freelancer_id"] for m in members["items"]] == [freelancer]


async def test_log_time_on_an_unknown_contract_is_refused_after_the_wait(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    entry = command(
        "LogTime",
        new_id("free"),
        contract_id=new_id("contract"),
        entry_id=new_id("entry"),
        work_date=today().isoformat(),
        hours="1.00",
    )
    await send(producer, entry, topics.CONTRACTS_COMMANDS)
    [seen] = await probe.wait_for(rejected(entry["command_id"]))
    assert seen.value["code"] == "unknown_contract"
    assert seen.key == entry["contract_id"]


async def test_contracts_are_listed_per_party(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    client_id = new_id("client")
    offers = [Parties(client_id=client_id) for _ in range(3)]
    for parties in offers:
        await extended(producer, probe, parties, terms=fixed_terms())
        accept = command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=1)
        await send(producer, accept)
    for parties in offers:
        await probe.wait_for(of_type("ContractActivated", offer_id=parties.offer_id))
    me = as_(client_id)
    first = (
        await api.get("/contracts", params={"client_id": client_id, "limit": 2}, headers=me)
    ).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = (
        await api.get(
            "/contracts",
            params={"client_id": client_id, "limit": 2, "cursor": first["next_cursor"]},
            headers=me,
        )
    ).json()
    assert rest["next_cursor"] is None
    listed = {c["offer_id"] for c in first["items"] + rest["items"]}
    assert listed == {p.offer_id for p in offers}
    assert all(c["status"] == "active" for c in first["items"] + rest["items"])


def metric_values(page: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus page, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


async def test_metrics_count_what_became_of_each_message(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    before = metric_values((await api.get("/metrics")).text)
    parties = Parties()
    await extended(producer, probe, parties)
    wrong_actor = command("AcceptOffer", parties.client_id, offer_id=parties.offer_id, version=1)
    invalid = command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=0)
    for message in (wrong_actor, invalid):
        await send(producer, message)
    await producer.send(topics.OFFERS_COMMANDS, b"not json", parties.offer_id)
    await probe.wait_for(rejected(invalid["command_id"]))
    await probe.wait_for(
        lambda s: s.topic == topics.COMMANDS_DEAD_LETTER and s.key == parties.offer_id
    )

    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = metric_values(response.text)

    def increase(name: str, **labels: str) -> float:
        sample = (name, frozenset({"service": "offer_service", **labels}.items()))
        return after.get(sample, 0) - before.get(sample, 0)

    def handled(type_: str, outcome: str) -> float:
        return increase(
            "offers_messages_total", topic=topics.OFFERS_COMMANDS, type=type_, outcome=outcome
        )

    assert handled("ExtendOffer", "handled") == 1
    assert handled("AcceptOffer", "handled") == 1  # the wrong actor's: refused by a rule
    assert handled("AcceptOffer", "invalid") == 1
    assert handled("unreadable", "dead_lettered") == 1
    for code in ("not_authorized", "invalid_command"):
        assert increase("offers_rejections_total", command_type="AcceptOffer", code=code) == 1
    assert (
        increase("offers_handling_seconds_count", topic=topics.OFFERS_COMMANDS, type="ExtendOffer")
        == 1
    )
    backlog = {dict(labels)["collection"] for name, labels in after if "outbox_backlog" in name}
    assert {"offers", "contracts", "rejections"} <= backlog
    lag = [value for (name, _), value in after.items() if name == "offers_consumer_lag"]
    assert lag and all(value >= 0 for value in lag)
    assert any(name.startswith("faststream_published_messages") for name, _ in after)
    # The new offer was inserted, and each refusal recorded: commands the database was sent.
    assert increase("offers_database_commands_total", command="insert", collection="offers") >= 1
    assert (
        increase("offers_database_commands_total", command="insert", collection="rejections") >= 1
    )
    # Each fetched batch: its size, and the time of each of its steps.
    batches = increase("offers_batch_records_count")
    assert batches >= 1
    assert increase("offers_batch_records_sum") >= 4  # the four records, in one batch or more
    for step in ("deciding", "checking", "storing", "publishing", "finishing"):
        assert increase("offers_batch_seconds_count", step=step) == batches


async def test_a_talent_cloud_belongs_to_the_client_that_first_named_it(
    app: Starlette, api: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    owner, cloud = Parties(), new_id("tc-owned")
    await extended(producer, probe, owner, terms=hourly_terms(talent_cloud_id=cloud))
    # As after a restart or a rebalance: the claim is not known here, and is read. (Once
    # the owner's batch is over: it keeps what it stored after it has published.)
    cache = app.state.records.cache
    async with asyncio.timeout(10):
        while not cache.get(("talent_clouds", cloud))[0]:  # noqa: ASYNC110 (no event to await)
            await asyncio.sleep(0.01)
    cache.clear()
    # Another client naming the cloud, in an extended offer or a changed one: refused.
    intruder = Parties()
    intrusion = intruder.extend(hourly_terms(talent_cloud_id=cloud))
    await send(producer, intrusion)
    [refused] = await probe.wait_for(rejected(intrusion["command_id"]))
    assert refused.value["code"] == "not_authorized"
    assert [e["field"] for e in refused.value["errors"]] == ["terms.talent_cloud_id"]
    assert cloud in refused.value["message"] and owner.client_id not in refused.value["message"]
    await extended(producer, probe, intruder)  # their own cloud is theirs
    change = command(
        "ChangeOffer",
        intruder.client_id,
        offer_id=intruder.offer_id,
        terms=hourly_terms(talent_cloud_id=cloud),
    )
    await send(producer, change)
    [changed] = await probe.wait_for(rejected(change["command_id"]))
    assert (changed.value["code"], changed.value["errors"][0]["field"]) == (
        "not_authorized",
        "terms.talent_cloud_id",
    )
    # The owner names it again, for a second freelancer; both accept and join.
    again = Parties(client_id=owner.client_id)
    await extended(producer, probe, again, terms=hourly_terms(talent_cloud_id=cloud))
    for parties in (owner, again):
        accept = command("AcceptOffer", parties.freelancer_id, offer_id=parties.offer_id, version=1)
        await send(producer, accept)
        await probe.wait_for(of_type("TalentCloudMemberAdded", freelancer_id=parties.freelancer_id))
    await probe.quiet()
    assert not probe.matching(of_type("OfferExtended", offer_id=intrusion["offer_id"], version=2))
    path = f"/talent-clouds/{cloud}/members"

    async def members(reader: str) -> tuple[int, list[str]]:
        response = await api.get(path, headers=as_(reader))
        body = response.json()
        return response.status_code, [m["freelancer_id"] for m in body.get("items", [])]

    assert await members(owner.client_id) == (200, [owner.freelancer_id, again.freelancer_id])
    assert await members(again.freelancer_id) == (200, [again.freelancer_id])
    for stranger in (intruder.client_id, intruder.freelancer_id):
        status, _ = await members(stranger)
        assert status == 404
