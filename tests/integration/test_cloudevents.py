"""Every event a service publishes carries CloudEvents' Kafka binary-mode headers, with its
JSON value unchanged (services.runtime.outbox)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from contracts import topics
from services.offer_service.app import create_app
from tests.conftest import fresh_settings
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, of_type, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def api(infra: Endpoints) -> AsyncIterator[httpx.AsyncClient]:
    settings = await fresh_settings(infra, "offer_service")
    async with running(create_app(settings)) as client:
        yield client


async def test_an_offer_event_carries_the_cloudevents_headers(
    api: httpx.AsyncClient, producer: Producer, probe: Probe
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
    assert (await api.get(f"/offers/{parties.offer_id}")).status_code == 200
