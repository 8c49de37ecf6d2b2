"""The analytics consumer (analytics/) against the real Kafka, after traffic through the real
offer_service and messaging_service: its tables agree with their read APIs, and reading the
same events again changes nothing. Also: the events carry CloudEvents' headers."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from analytics.consumer import Settings, run, start_at_the_end
from analytics.fold import utc
from contracts import topics
from services.messaging_service.app import create_app as messaging_app
from services.offer_service.app import create_app as offer_app
from tests.conftest import fresh_settings
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, as_, command, hourly_terms, of_type, running

pytestmark = pytest.mark.integration

TABLES = ("offers", "offer_versions", "contracts", "talent_cloud_members", "events")


@pytest.fixture(scope="module")
async def apis(infra: Endpoints) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    offer_settings = await fresh_settings(infra, "offer_service")
    messaging_settings = await fresh_settings(infra, "messaging_service")
    async with (
        running(offer_app(offer_settings)) as offers,
        running(messaging_app(messaging_settings)) as threads,
    ):
        yield {"offers": offers, "threads": threads}


async def negotiate(producer: Producer, probe: Probe, parties: Parties, plot: int) -> str:
    """One offer's life, of four kinds; returns how it ends."""
    offer_id = parties.offer_id

    async def send(topic: str, message: dict[str, Any], then: str, **fields: Any) -> None:
        await producer.send(topic, message, offer_id)
        await probe.wait_for(of_type(then, offer_id=offer_id, **fields))

    await send(topics.OFFERS_COMMANDS, parties.extend(), "OfferExtended")
    if plot == 3:
        withdraw = command("WithdrawOffer", parties.client_id, offer_id=offer_id)
        await send(topics.OFFERS_COMMANDS, withdraw, "OfferWithdrawn")
        return "withdrawn"
    if plot in (1, 2):
        text = command(
            "PostMessage",
            parties.client_id,
            offer_id=offer_id,
            message_id=uuid.uuid4().hex,
            text="Hi",
        )
        await send(topics.NEGOTIATIONS_COMMANDS, text, "MessagePosted")
    if plot == 2:
        decline = command("DeclineOffer", parties.freelancer_id, offer_id=offer_id)
        await send(topics.OFFERS_COMMANDS, decline, "OfferDeclined")
        return "declined"
    version = 1
    if plot == 1:
        proposal_id = uuid.uuid4().hex
        propose = command(
            "ProposeTerms",
            parties.freelancer_id,
            offer_id=offer_id,
            message_id=proposal_id,
            changes={"hourly_rate": "52.50"},
        )
        await send(topics.NEGOTIATIONS_COMMANDS, propose, "TermsProposed")
        change = command(
            "ChangeOffer",
            parties.client_id,
            offer_id=offer_id,
            terms=hourly_terms(hourly_rate="52.50"),
            message="Agreed",
            in_response_to=proposal_id,
        )
        await send(topics.OFFERS_COMMANDS, change, "OfferChanged", version=2)
        version = 2
    accept = command("AcceptOffer", parties.freelancer_id, offer_id=offer_id, version=version)
    await send(topics.OFFERS_COMMANDS, accept, "OfferAccepted")
    await probe.wait_for(of_type("ContractActivated", offer_id=offer_id))
    return "accepted"


def snapshot(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return {
            table: connection.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            for table in TABLES
        }


async def test_the_tables_agree_with_the_read_apis_and_a_second_run_changes_nothing(
    apis: dict[str, httpx.AsyncClient],
    producer: Producer,
    probe: Probe,
    infra: Endpoints,
    tmp_path: Path,
) -> None:
    settings = Settings(infra.kafka_bootstrap_servers, str(tmp_path / "warehouse.duckdb"))
    await start_at_the_end(settings)
    with duckdb.connect(settings.database, read_only=True) as connection:
        start = connection.execute("SELECT * FROM kafka_offsets").fetchall()
    ending: dict[str, str] = {}
    for plot in range(8):
        parties = Parties()
        ending[parties.offer_id] = await negotiate(producer, probe, parties, plot % 4)
    for offer_id in ending:
        await probe.wait_for(of_type("ThreadClosed", offer_id=offer_id))

    assert await run(settings, until_caught_up=True) >= 8 * 3
    with duckdb.connect(settings.database, read_only=True) as connection:
        for offer_id, status in ending.items():
            await agrees(connection, apis, offer_id, status)

    before = snapshot(Path(settings.database))
    assert await run(settings, until_caught_up=True) == 0  # caught up: nothing new
    # Read every event again, as after a lost offset: the rows stay as they were.
    with duckdb.connect(settings.database) as connection:
        connection.executemany(
            "UPDATE kafka_offsets SET next_offset = ? WHERE topic = ? AND partition = ?",
            [(offset, topic, partition) for topic, partition, offset in start],
        )
    assert await run(settings, until_caught_up=True) >= 8 * 3
    assert snapshot(Path(settings.database)) == before


async def agrees(
    connection: duckdb.DuckDBPyConnection,
    apis: dict[str, httpx.AsyncClient],
    offer_id: str,
    status: str,
) -> None:
    row = connection.execute(
        "SELECT client_id, freelancer_id, job_id, status, versions, messages, proposals, "
        "first_amount, last_amount, extended_at FROM offers WHERE offer_id = ?",
        [offer_id],
    ).fetchone()
    assert row is not None, f"{offer_id} is not in the warehouse"
    client, freelancer, job, stored_status, versions, messages, proposals, first, last, at = row
    # Read as the client the warehouse names: a wrong one is shown what a stranger gets (404).
    party = as_(client)
    served = (await apis["offers"].get(f"/offers/{offer_id}", headers=party)).json()
    assert (client, freelancer, job) == (
        served["client_id"],
        served["freelancer_id"],
        served["job_id"],
    )
    assert stored_status == served["status"] == status
    assert versions == served["version"] == len(served["versions"])
    # The service stamps its document a moment apart from its event: a millisecond or two.
    assert abs((at - utc(served["created_at"])).total_seconds()) < 1
    assert str(first) == served["versions"][0]["terms"]["hourly_rate"]
    assert str(last) == served["terms"]["hourly_rate"]

    stored_versions = connection.execute(
        "SELECT version, terms, message, in_response_to, sent_at FROM offer_versions "
        "WHERE offer_id = ? ORDER BY version",
        [offer_id],
    ).fetchall()
    assert [
        (v, json.loads(terms), message, answer, sent_at)
        for v, terms, message, answer, sent_at in stored_versions
    ] == [
        (
            v["version"],
            v["terms"],
            v["message"],
            v["in_response_to"],
            utc(v["sent_at"]),
        )
        for v in served["versions"]
    ]

    thread = (await apis["threads"].get(f"/threads/{offer_id}/messages", headers=party)).json()
    kinds = [item["kind"] for item in thread["items"]]
    assert (messages, proposals) == (kinds.count("message"), kinds.count("terms_proposal"))

    contract = connection.execute(
        "SELECT contract_id, offer_version, terms FROM contracts WHERE offer_id = ?", [offer_id]
    ).fetchone()
    if status != "accepted":
        assert contract is None
        return
    assert contract is not None
    served_contract = (await apis["offers"].get(f"/contracts/{contract[0]}", headers=party)).json()
    assert contract[1] == served_contract["offer_version"] == served["version"]
    assert json.loads(contract[2]) == served_contract["terms"]


async def test_an_offer_event_carries_the_cloudevents_headers(
    apis: dict[str, httpx.AsyncClient], producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    await producer.send(topics.OFFERS_COMMANDS, parties.extend(), parties.offer_id)
    [seen] = await probe.wait_for(of_type("OfferExtended", offer_id=parties.offer_id))

    event = seen.value
    assert {name: value for name, value in seen.headers.items() if name.startswith("ce_")} == {
        "ce_specversion": "1.0",
        "ce_id": event["event_id"],
        "ce_type": "OfferExtended",
        "ce_source": "/offers-platform/offers.events",
        "ce_time": event["occurred_at"],
        "ce_subject": parties.offer_id,
    }
    assert seen.headers["content-type"] == "application/json"
    # The value is the event alone: the headers added nothing to it.
    assert json.loads(seen.raw) == event and not any(k.startswith("ce_") for k in event)
    read = await apis["offers"].get(f"/offers/{parties.offer_id}", headers=as_(parties.client_id))
    assert read.status_code == 200
