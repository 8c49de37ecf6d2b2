"""Expiry (SPEC §4): past expires_at an offer can never be accepted, and the sweep emits
OfferExpired exactly once per offer, also with two offer_service instances running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from contracts import topics
from services.offer_service.app import create_app
from services.runtime.config import Settings
from tests.conftest import fresh_settings, settings_for
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, as_, command, of_type, running

pytestmark = pytest.mark.integration

TTL_SECONDS = 3


async def expiring_settings(infra: Endpoints) -> Settings:
    return await fresh_settings(
        infra,
        "offer_service",
        database_name=f"{settings_for(infra, 'offer_service').database_name}_expiry",
        offer_ttl_seconds=TTL_SECONDS,
        expiry_sweep_interval_seconds=1,
    )


@pytest.fixture(scope="module")
async def two_instances(infra: Endpoints) -> AsyncIterator[httpx.AsyncClient]:
    settings = await expiring_settings(infra)  # two instances: one group, one database
    async with running(create_app(settings)) as api, running(create_app(settings)):
        yield api


async def test_an_offer_past_expiry_cannot_be_accepted_and_expires_once(
    two_instances: httpx.AsyncClient, producer: Producer, probe: Probe
) -> None:
    offers = [Parties() for _ in range(6)]
    for parties in offers:
        await producer.send(topics.OFFERS_COMMANDS, parties.extend(), parties.offer_id)
    for parties in offers:
        await probe.wait_for(of_type("OfferExtended", offer_id=parties.offer_id))
    await asyncio.sleep(TTL_SECONDS + 0.2)
    late = command("AcceptOffer", offers[0].freelancer_id, offer_id=offers[0].offer_id, version=1)
    await producer.send(topics.OFFERS_COMMANDS, late, offers[0].offer_id)
    [refused] = await probe.wait_for(of_type("CommandRejected", command_id=late["command_id"]))
    assert refused.value["code"] == "offer_expired"

    for parties in offers:
        await probe.wait_for(of_type("OfferExpired", offer_id=parties.offer_id))
    await asyncio.sleep(2.5)  # both instances sweep at least twice more
    for parties in offers:
        expired = probe.matching(of_type("OfferExpired", offer_id=parties.offer_id))
        assert len({s.value["event_id"] for s in expired}) == 1, [s.value for s in expired]
        read = await two_instances.get(
            f"/offers/{parties.offer_id}", headers=as_(parties.client_id)
        )
        offer = read.json()
        assert offer["status"] == "expired"
    assert not probe.matching(of_type("OfferAccepted", offer_id=offers[0].offer_id))
