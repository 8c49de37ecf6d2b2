"""messaging_service and notification_service killed with SIGKILL at random points while
offers and chat messages stream in: every message is stored and published once, every
(source event, recipient) gets one notification, and the inbox matches what was published."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from contracts import topics
from tests.conftest import RUN_ID
from tests.e2e.processes import ServiceProcess, launch
from tests.infrastructure import Endpoints
from tests.kit import Parties, Probe, Producer, Seen, command, of_type

pytestmark = pytest.mark.e2e

OFFERS = 60


def get_json(url: str, actor: str | None = None) -> Any:
    """A read API's answer, read on behalf of ``actor`` (every read names its reader)."""
    headers = {"X-Actor-Id": actor} if actor else {}
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=5
    ) as response:
        return json.load(response)


async def test_downstream_services_killed_lose_and_double_nothing(
    infra: Endpoints, producer: Producer, probe: Probe, tmp_path: Path
) -> None:
    run = RUN_ID + "k9d"
    offer_service = await launch("offer_service", 18301, infra, tmp_path, run)
    messaging = await launch("messaging_service", 18302, infra, tmp_path, run)
    notifications = await launch("notification_service", 18303, infra, tmp_path, run)
    services = (offer_service, messaging, notifications)
    for service in services:
        await asyncio.to_thread(service.wait_healthy)
    offers = [Parties() for _ in range(OFFERS)]
    rng = random.Random(11)

    async def stream() -> None:
        for parties in offers:
            await producer.send(topics.OFFERS_COMMANDS, parties.extend(), parties.offer_id)
            for sender, message_id in ((parties.freelancer_id, "m-1"), (parties.client_id, "m-2")):
                post = command(
                    "PostMessage",
                    sender,
                    offer_id=parties.offer_id,
                    message_id=message_id,
                    text=f"{message_id} from {sender}",
                )
                await producer.send(topics.NEGOTIATIONS_COMMANDS, post, parties.offer_id)
                if rng.random() < 0.3:  # a producer's retry
                    await producer.send(topics.NEGOTIATIONS_COMMANDS, post, parties.offer_id)

    async def kill_while_busy(victim: ServiceProcess, output: str) -> None:
        """Start the service on a backlog and kill it as soon as it is seen working, so a
        record it has handled but not yet committed is delivered again."""

        def is_output(seen: Seen) -> bool:
            return isinstance(seen.value, dict) and seen.value.get("type") == output

        before = len(probe.matching(is_output))
        victim.start()
        await probe.wait_for(is_output, count=before + rng.randint(1, 8), within=60)
        victim.kill()

    try:
        messaging.kill()
        notifications.kill()
        await stream()  # a backlog for both, while they are down
        for _ in range(3):
            await kill_while_busy(messaging, "MessagePosted")
            await kill_while_busy(notifications, "NotificationCreated")
        messaging.start()
        notifications.start()
        for service in (messaging, notifications):
            await asyncio.to_thread(service.wait_healthy)
        last = offers[-1]
        await probe.wait_for(
            of_type("NotificationCreated", recipient_id=last.freelancer_id, kind="new_message"),
            within=120,
        )
        for parties in offers:
            await probe.wait_for(
                of_type("NotificationCreated", recipient_id=parties.client_id, kind="new_message"),
                within=60,
            )
        await probe.quiet(3)

        posted: dict[tuple[str, str], set[str]] = defaultdict(set)
        notified: dict[str, set[str]] = defaultdict(set)
        kinds: Counter[tuple[str, str]] = Counter()
        for seen in probe.seen:
            value = seen.value
            if not isinstance(value, dict):
                continue
            if value.get("type") == "MessagePosted":
                posted[(value["offer_id"], value["message_id"])].add(value["event_id"])
            if value.get("type") == "NotificationCreated":
                if value["notification_id"] not in notified:
                    kinds[(value["recipient_id"], value["kind"])] += 1
                notified[value["notification_id"]].add(value["event_id"])
        # A repeat on the wire keeps its event_id; nothing is published as two events.
        assert all(len(ids) == 1 for ids in notified.values())
        for parties in offers:
            assert len(posted[(parties.offer_id, "m-1")]) == 1
            assert len(posted[(parties.offer_id, "m-2")]) == 1
            thread = await asyncio.to_thread(
                get_json, f"{messaging.url}/threads/{parties.offer_id}/messages", parties.client_id
            )
            assert [m["message_id"] for m in thread["items"]] == ["m-1", "m-2"]
            assert kinds[(parties.freelancer_id, "offer_received")] == 1
            assert kinds[(parties.freelancer_id, "new_message")] == 1
            assert kinds[(parties.client_id, "new_message")] == 1
            for recipient in (parties.freelancer_id, parties.client_id):
                inbox = await asyncio.to_thread(
                    get_json,
                    f"{notifications.url}/notifications?recipient_id={recipient}",
                    recipient,
                )
                stored = {n["notification_id"] for n in inbox["items"]}
                published = {
                    s.value["notification_id"]
                    for s in probe.matching(of_type("NotificationCreated", recipient_id=recipient))
                }
                assert stored == published
    finally:
        for service in services:
            service.stop()
