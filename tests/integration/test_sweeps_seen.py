"""A sweep's own read serves the record it asks for: an ExpireOffer takes its offer, a
SendReminder its offer's projection, as the sweep of its process read it
(services.runtime.batch, StateCache.see), without reading it again. In a module of its own,
so that no other service of the test run handles the same records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
from pymongo import monitoring

from contracts import topics
from services.notification_service.app import create_app as notification_app
from services.offer_service.app import create_app as offer_app
from services.runtime.config import Settings
from tests.conftest import settings_for
from tests.infrastructure import Endpoints
from tests.integration.test_notification_service import extended, reminders_of, reminding_settings
from tests.integration.test_offer_expiry import expiring_settings
from tests.kit import Parties, Probe, Producer, of_type, running

pytestmark = pytest.mark.integration

TTL_SECONDS = 6  # long enough for the first process to stop before any falls due


class OfferWrites(monitoring.CommandListener):
    """The `_id` reads and the writes of `offers` in one database, in the order sent."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.sent: list[tuple[str, str]] = []
        self.listening = True  # (a listener cannot be unregistered: it stops recording)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.listening or event.database_name != self.database:
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

    def read_only_after_its_write(self, offer_id: str) -> None:
        mine = [what for what, offer in self.sent if offer == offer_id]
        assert "write" in mine, mine
        # Read again (by a repeated ask) only once written, if at all.
        assert "read" not in mine[: mine.index("write")], mine


@contextmanager
def recording(settings: Settings) -> Iterator[OfferWrites]:
    writes = OfferWrites(settings.database_name)
    monitoring.register(writes)  # for the clients made from now on: the services' own
    try:
        yield writes
    finally:
        writes.listening = False


async def test_an_offer_the_sweep_read_is_expired_without_being_read_again(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    """The offers are extended by one process and expired by the next, which has none of
    them in its cache: each ExpireOffer takes its offer as that process's sweep read it,
    and the write checks it."""
    settings = replace(
        await expiring_settings(infra),
        database_name=f"{settings_for(infra, 'offer_service').database_name}_seen",
        offer_ttl_seconds=TTL_SECONDS,
    )
    offers = [Parties() for _ in range(5)]
    with recording(settings) as writes:
        async with running(offer_app(settings)):
            for parties in offers:
                await producer.send(topics.OFFERS_COMMANDS, parties.extend(), parties.offer_id)
            for parties in offers:
                await probe.wait_for(of_type("OfferExtended", offer_id=parties.offer_id))
        writes.sent.clear()
        async with running(offer_app(settings)):
            for parties in offers:
                await probe.wait_for(of_type("OfferExpired", offer_id=parties.offer_id))
    for parties in offers:
        writes.read_only_after_its_write(parties.offer_id)
        expired = probe.matching(of_type("OfferExpired", offer_id=parties.offer_id))
        assert len({s.value["event_id"] for s in expired}) == 1


async def test_a_reminder_the_sweep_found_is_sent_without_reading_the_projection_again(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    """One process keeps the offers' projections, the next (its cache empty) sends their
    reminders: each SendReminder takes its projection as that process's sweep read it."""
    leads = (4,)
    settings = await reminding_settings(infra, leads)
    offers = [Parties() for _ in range(3)]
    with recording(settings) as writes:
        async with running(notification_app(settings)):
            for parties in offers:
                message = extended(parties, expires_in=TTL_SECONDS + 1)
                await producer.send(topics.OFFERS_EVENTS, message, key=parties.offer_id)
            for parties in offers:
                await probe.wait_for(
                    of_type("NotificationCreated", recipient_id=parties.freelancer_id)
                )
        writes.sent.clear()
        async with running(notification_app(settings)):
            for parties in offers:
                await probe.wait_for(reminders_of(parties, leads), within=30)
    for parties in offers:
        writes.read_only_after_its_write(parties.offer_id)
        assert len(probe.matching(reminders_of(parties, leads))) == 1
