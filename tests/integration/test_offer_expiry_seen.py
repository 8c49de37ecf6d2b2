"""Expiry without a second read: an ExpireOffer takes its offer as the sweep of its process
read it (services.runtime.batch, StateCache.see), in a module of its own, so that no other
offer_service of the test run handles the same commands."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pymongo import monitoring

from contracts import topics
from services.offer_service.app import create_app
from tests.conftest import settings_for
from tests.infrastructure import Endpoints
from tests.integration.test_offer_expiry import expiring_settings
from tests.kit import Parties, Probe, Producer, of_type, running

pytestmark = pytest.mark.integration

TTL_SECONDS = 6  # long enough for the first process to stop before any falls due


class OfferWrites(monitoring.CommandListener):
    """The `_id` reads and the writes of offers, in the order the clients sent them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.listening = True  # (a listener cannot be unregistered: it stops recording)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.listening:
            return
        if event.command_name == "find" and event.command.get("find") == "offers":
            found = event.command.get("filter", {}).get("_id")
            if isinstance(found, str):
                self.sent.append(("read", found))
        elif event.command_name == "update" and event.command.get("update") == "offers":
            for update in event.command.get("updates", ()):
                self.sent.append(("write", str(update["q"].get("_id"))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_an_offer_the_sweep_read_is_expired_without_being_read_again(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    """The offers are extended by one process and expired by the next, which has none of
    them in its cache: each ExpireOffer takes its offer as that process's sweep read it,
    and the write checks it."""
    writes = OfferWrites()
    monitoring.register(writes)  # for the clients made from now on: the services' own
    settings = replace(
        await expiring_settings(infra),
        database_name=f"{settings_for(infra, 'offer_service').database_name}_seen",
        offer_ttl_seconds=TTL_SECONDS,
    )
    offers = [Parties() for _ in range(5)]
    async with running(create_app(settings)):
        for parties in offers:
            await producer.send(topics.OFFERS_COMMANDS, parties.extend(), parties.offer_id)
        for parties in offers:
            await probe.wait_for(of_type("OfferExtended", offer_id=parties.offer_id))
    writes.sent.clear()
    async with running(create_app(settings)):
        for parties in offers:
            await probe.wait_for(of_type("OfferExpired", offer_id=parties.offer_id))
    writes.listening = False
    for parties in offers:
        mine = [what for what, offer in writes.sent if offer == parties.offer_id]
        assert "write" in mine, mine
        # Read again (by a repeated ask) only once it is expired, if at all.
        assert "read" not in mine[: mine.index("write")], mine
        expired = probe.matching(of_type("OfferExpired", offer_id=parties.offer_id))
        assert len({s.value["event_id"] for s in expired}) == 1
