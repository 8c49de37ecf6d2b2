"""offer_service's handlers, every path, on in-memory documents."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from pymongo.errors import ConnectionFailure

from contracts import topics
from contracts.internal import ExpireOffer
from services.offer_service.domain.contract import contract_id_for
from services.offer_service.store import time_entry_id
from services.runtime.wire import RecordOrigin
from tests.kit import Parties, command, hourly_terms

from .harness import WAIT
from .services import OfferStorage, offer_service


def accept(p: Parties, version: int = 1) -> dict[str, Any]:
    return command("AcceptOffer", p.freelancer_id, offer_id=p.offer_id, version=version)


def log_time(p: Parties, entry: str, hours: str = "2.00", **fields: Any) -> dict[str, Any]:
    start = hourly_terms()["start_date"]
    return command(
        "LogTime",
        p.freelancer_id,
        contract_id=contract_id_for(p.offer_id),
        entry_id=entry,
        work_date=fields.pop("work_date", start),
        hours=hours,
        **fields,
    )


async def test_an_offer_is_extended_once_however_often_its_command_comes() -> None:
    service, p = await offer_service(), Parties()
    extend = p.extend()
    for _ in range(3):
        await service.send(topics.OFFERS_COMMANDS, extend, key=p.offer_id)
    assert service.one("OfferExtended", offer_id=p.offer_id)["version"] == 1
    assert service.out("CommandRejected") == []


async def test_a_redelivered_extend_claims_its_cloud_if_a_crash_lost_the_claim() -> None:
    service, p = await offer_service(), Parties()
    extend = p.extend()
    await service.send(topics.OFFERS_COMMANDS, extend, key=p.offer_id)
    clouds = service.handlers.clouds.documents
    await clouds.delete(p.talent_cloud_id)  # the offer stored, the process gone before the claim
    await service.send(topics.OFFERS_COMMANDS, extend, key=p.offer_id)  # redelivered
    claimed = await clouds.get(p.talent_cloud_id)
    assert claimed is not None and claimed["owner_id"] == p.client_id
    assert len(service.out("OfferExtended", offer_id=p.offer_id)) == 1


async def test_a_second_extend_of_the_same_offer_is_refused() -> None:
    service, p = await offer_service(), Parties()
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    again = p.extend()
    await service.send(topics.OFFERS_COMMANDS, again, key=p.offer_id)
    await service.send(topics.OFFERS_COMMANDS, again, key=p.offer_id)  # redelivered
    rejected = service.one("CommandRejected", command_id=again["command_id"])
    assert rejected["code"] == "offer_exists" and rejected["status"] == "pending"


async def test_a_command_for_an_offer_nobody_extended_is_refused_at_once() -> None:
    service, p = await offer_service(), Parties()
    await service.send(topics.OFFERS_COMMANDS, accept(p), key=p.offer_id)
    assert service.one("CommandRejected")["code"] == "unknown_offer"
    assert service.outcome_count("parked") == 0  # offers come from commands: nothing to wait for


async def test_acceptance_activates_one_contract_and_one_membership() -> None:
    service, p = await offer_service(), Parties()
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await service.send(topics.OFFERS_COMMANDS, accept(p), key=p.offer_id)
    await service.settle()  # ActivateContract, then JoinTalentCloud, on their own partitions
    activated = service.one("ContractActivated", offer_id=p.offer_id)
    assert activated["contract_id"] == contract_id_for(p.offer_id)
    member = service.one("TalentCloudMemberAdded", freelancer_id=p.freelancer_id)
    assert member["talent_cloud_id"] == p.talent_cloud_id
    assert member["causation_id"] == service.one("OfferAccepted")["event_id"]
    # The activation asked for again (a redelivery) adds nothing.
    [ask] = [e for e in service.broker.published if e.type == "ActivateContract"]
    await service.send(ask.topic, ask.payload.encode(), key=ask.key)
    await service.settle()
    assert len(service.out("ContractActivated")) == 1


async def test_a_second_contract_in_the_same_cloud_adds_the_freelancer_once() -> None:
    service, first = await offer_service(), Parties()
    second = Parties(client_id=first.client_id, freelancer_id=first.freelancer_id)  # its cloud
    for p in (first, second):
        await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
        await service.send(topics.OFFERS_COMMANDS, accept(p), key=p.offer_id)
    await service.settle()
    assert len(service.out("ContractActivated")) == 2
    assert len(service.out("TalentCloudMemberAdded")) == 1


async def test_time_logged_before_its_contract_exists_waits_for_it_in_order() -> None:
    service, p = await offer_service(), Parties()
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    contract = contract_id_for(p.offer_id)
    first, second = log_time(p, "e-1", "3.00"), log_time(p, "e-2", "4.00")
    await service.send(topics.CONTRACTS_COMMANDS, first, key=contract)
    await service.send(topics.CONTRACTS_COMMANDS, second, key=contract)
    assert service.out("TimeLogged") == [] and service.outcome_count("parked") == 2
    await service.send(topics.OFFERS_COMMANDS, accept(p), key=p.offer_id)
    await service.settle()
    assert [e["entry_id"] for e in service.out("TimeLogged")] == ["e-1", "e-2"]
    assert service.outcome_count("released") == 2
    assert service.storage.parked.documents == {}


async def test_time_logged_on_a_contract_that_never_comes_is_refused_once_after_the_wait() -> None:
    service, p = await offer_service(), Parties()
    contract = contract_id_for(p.offer_id)
    log = log_time(p, "e-1")
    await service.send(topics.CONTRACTS_COMMANDS, log, key=contract)
    await service.sweep_parked()  # not due yet
    assert service.out("CommandRejected") == []
    service.clock.advance(WAIT.total_seconds() + 1)
    await service.sweep_parked()
    await service.sweep_parked()  # asked twice: refused once
    rejected = service.one("CommandRejected", command_id=log["command_id"])
    assert rejected["code"] == "unknown_contract"
    assert "waited 5s" in rejected["message"]
    await service.send(topics.CONTRACTS_COMMANDS, log, key=contract)  # redelivered later
    assert len(service.out("CommandRejected")) == 1


async def test_time_on_a_contract_never_activated_is_refused_even_while_the_service_is_busy() -> (
    None
):
    """The asks themselves go to the internal topic, the topic that activations come on:
    a busy one must not put the refusal off for ever."""
    service, p = await offer_service(), Parties()
    log = log_time(p, "e-1")
    await service.send(topics.CONTRACTS_COMMANDS, log, key=contract_id_for(p.offer_id))
    service.highwater[(service.table.internal_topic, 0)] = 10_000  # far from read
    service.clock.advance(WAIT.total_seconds() + 1)
    await service.sweep_parked()
    assert service.one("CommandRejected", command_id=log["command_id"])["code"] == (
        "unknown_contract"
    )


async def test_a_parked_command_survives_a_restart_and_is_released_once() -> None:
    storage = OfferStorage()
    before, p = await offer_service(storage), Parties()
    await before.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await before.send(
        topics.CONTRACTS_COMMANDS, log_time(p, "e-1"), key=contract_id_for(p.offer_id)
    )
    after = await offer_service(storage, clock=before.clock, broker=before.broker)
    await after.send(topics.OFFERS_COMMANDS, accept(p), key=p.offer_id)
    await after.settle()
    assert len(after.out("TimeLogged")) == 1


async def test_the_weekly_limit_holds_across_entries_and_redeliveries() -> None:
    service, p = await offer_service(), Parties()
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await service.send(topics.OFFERS_COMMANDS, accept(p), key=p.offer_id)
    await service.settle()
    contract = contract_id_for(p.offer_id)
    big = log_time(p, "e-1", "24.00")
    await service.send(topics.CONTRACTS_COMMANDS, big, key=contract)
    await service.send(topics.CONTRACTS_COMMANDS, big, key=contract)  # redelivered
    over = log_time(p, "e-2", "7.00")  # 31 of the week's 30 hours
    await service.send(topics.CONTRACTS_COMMANDS, over, key=contract)
    assert len(service.out("TimeLogged")) == 1
    assert service.one("CommandRejected", command_id=over["command_id"])["code"] == (
        "weekly_limit_exceeded"
    )


async def test_expiry_is_decided_by_the_offers_own_handler_once() -> None:
    service, p = await offer_service(), Parties()
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    expire = ExpireOffer(command_id="sweep-1", offer_id=p.offer_id)
    await service.send(service.table.internal_topic, expire, key=p.offer_id)
    assert service.out("OfferExpired") == []  # not due: the sweep's ask changes nothing
    service.clock.advance(timedelta(days=31).total_seconds())
    for _ in range(2):  # two instances' sweeps ask
        await service.send(service.table.internal_topic, expire, key=p.offer_id)
    await service.send(
        service.table.internal_topic,
        ExpireOffer(command_id="sweep-2", offer_id=p.offer_id),
        key=p.offer_id,
    )
    assert len(service.out("OfferExpired")) == 1
    late = accept(p)
    await service.send(topics.OFFERS_COMMANDS, late, key=p.offer_id)
    assert service.one("CommandRejected", command_id=late["command_id"])["code"] == (
        "offer_expired"
    )


async def test_an_accepted_offer_does_not_expire() -> None:
    service, p = await offer_service(), Parties()
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await service.send(topics.OFFERS_COMMANDS, accept(p), key=p.offer_id)
    service.clock.advance(timedelta(days=31).total_seconds())
    expire = ExpireOffer(command_id="sweep-1", offer_id=p.offer_id)
    await service.send(service.table.internal_topic, expire, key=p.offer_id)
    assert service.out("OfferExpired") == []


async def test_events_left_unpublished_by_a_broker_outage_go_out_once_on_redelivery() -> None:
    service, p = await offer_service(), Parties()
    service.broker.fail_next = 1  # the write is stored, its publish fails: the record rewinds
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    assert len(service.out("OfferExtended")) == 1
    stored = await service.handlers.store.offers.documents.get(p.offer_id)
    assert stored is not None and stored["outbox"] == [] and "outbox_pending" not in stored


async def test_leftovers_of_an_earlier_write_go_out_before_the_next_events() -> None:
    service, p = await offer_service(), Parties()
    service.broker.fail_next = 1
    # Stored, but the process died before publishing (the record is not handled again here).
    with pytest.raises(ConnectionError):
        await service.records.handle(
            json.dumps(p.extend()).encode(),
            RecordOrigin(topics.OFFERS_COMMANDS, 0, 99, p.offer_id.encode()),
        )
    assert service.out("OfferExtended") == []
    await service.send(topics.OFFERS_COMMANDS, accept(p), key=p.offer_id)
    assert [e.type for e in service.broker.published][:2] == ["OfferExtended", "OfferAccepted"]


async def test_time_entries_are_documents_of_their_own_counted_once_across_a_crash() -> None:
    """The contract counts the hours and asks for the entry in one write: an outage before
    it leaves nothing, and the redelivery counts the hours once and stores the entry once."""
    service, p = await offer_service(), Parties()
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await service.send(topics.OFFERS_COMMANDS, accept(p), key=p.offer_id)
    await service.settle()
    contracts = service.handlers.store.contracts.documents
    real_replace, failures = contracts.replace, [ConnectionFailure("database away")]

    async def replace_after_an_outage(document: dict[str, Any], *, revision: int) -> bool:
        if failures:
            raise failures.pop()
        written: bool = await real_replace(document, revision=revision)
        return written

    contracts.replace = replace_after_an_outage
    entry = log_time(p, "e-1", "3.00")
    await service.send(topics.CONTRACTS_COMMANDS, entry)  # fails once, then is redelivered
    await service.settle()
    await service.send(topics.CONTRACTS_COMMANDS, entry)  # and once more, much later
    await service.settle()
    contract_id = contract_id_for(p.offer_id)
    stored = await contracts.get(contract_id)
    assert stored is not None and "time_entries" not in stored
    assert stored["hours_by_week"] == {next(iter(stored["hours_by_week"])): "3.00"}
    [written] = service.handlers.store.time_entries.documents.documents.values()
    assert written["entry_id"] == "e-1" and written["hours"] == "3.00"
    assert [e["entry_id"] for e in service.out("TimeLogged")] == ["e-1"]


async def test_an_entry_is_counted_once_on_its_way_to_being_stored_and_after() -> None:
    """The entry is stored by the ask the contract's write sends, so for a while the
    contract has counted an entry not stored yet. A new command naming the same entry finds
    it counted then (the contract remembers the entry_id) and stored later (the entry is
    looked up, however many entries the contract has remembered since)."""
    service, p = await offer_service(), Parties()
    await service.send(topics.OFFERS_COMMANDS, p.extend(), key=p.offer_id)
    await service.send(topics.OFFERS_COMMANDS, accept(p), key=p.offer_id)
    await service.settle()
    entries = service.handlers.store.time_entries.documents
    await service.send(topics.CONTRACTS_COMMANDS, log_time(p, "e-1", "3.00", memo="day one"))
    assert await entries.get(time_entry_id(contract_id_for(p.offer_id), "e-1")) is None
    await service.send(topics.CONTRACTS_COMMANDS, log_time(p, "e-1", "3.00"))  # on its way
    await service.settle()
    contracts = service.handlers.store.contracts.documents
    # As if it had counted a thousand entries since, and forgotten this one.
    assert await contracts.update(contract_id_for(p.offer_id), {"handled": []})
    await service.send(topics.CONTRACTS_COMMANDS, log_time(p, "e-1", "3.00"))  # stored
    await service.settle()
    stored = await contracts.get(contract_id_for(p.offer_id))
    assert stored is not None
    assert list(stored["hours_by_week"].values()) == ["3.00"]
    [written] = entries.documents.values()
    assert (written["entry_id"], written["hours"], written["memo"]) == ("e-1", "3.00", "day one")
    assert [e["entry_id"] for e in service.out("TimeLogged")] == ["e-1"]
