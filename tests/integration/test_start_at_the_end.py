"""A service whose consumer group starts where an earlier owner left off (a new instance,
a group started at the topics' ends) has read nothing of offers.events itself. A command
for an offer nobody extended must still be refused once its wait runs out: the group's
committed offset, not a record read here, says the offer is not in the backlog."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from contracts import topics
from services.messaging_service.app import create_app
from tests.conftest import UNKNOWN_OFFER_WAIT_SECONDS, fresh_settings
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, command, of_type, running

pytestmark = pytest.mark.integration


async def test_an_unknown_offer_is_refused_after_the_wait_with_nothing_read_of_offers_events(
    infra: Endpoints, producer: Producer, probe: Probe
) -> None:
    parties = Parties()
    # On the offer's partition, handled by the group's earlier owner: a record of a type
    # this service does not read. The new instance never reads it, yet it is there.
    earlier = {"type": "OfferViewed", "event_id": str(uuid.uuid4()), "offer_id": parties.offer_id}
    await producer.send(topics.OFFERS_EVENTS, earlier, key=parties.offer_id)
    settings = await fresh_settings(infra, "messaging_service")
    async with running(create_app(settings)):
        post = command(
            "PostMessage",
            parties.freelancer_id,
            offer_id=parties.offer_id,
            message_id=str(uuid.uuid4()),
            text="Is this still open?",
        )
        sent = asyncio.get_running_loop().time()
        await producer.send(topics.NEGOTIATIONS_COMMANDS, post, key=parties.offer_id)
        [rejected] = await probe.wait_for(
            of_type("CommandRejected", command_id=post["command_id"]),
            within=UNKNOWN_OFFER_WAIT_SECONDS + 15,
        )
        assert rejected.value["code"] == "unknown_offer"
        waited = asyncio.get_running_loop().time() - sent
        assert waited >= UNKNOWN_OFFER_WAIT_SECONDS * 0.9
