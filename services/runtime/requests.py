"""The internal commands a service's sweeps send to its own internal topic.

A sweep finds the same due work again on every pass until the aggregate's handler has done
it, so each command is asked for at most once per `quiet` seconds: a service's sweep
interval (`quiet_for`), so that a pass asks for each piece of work once however long it
reads (a burst of 10,000 expiries among 1M offers is read for several seconds, and asked
for meanwhile), and the next pass asks again for what is still not done; a page of asks goes out
together (services.runtime.kafka.Publishers.publish_together), not one awaited publish at a
time. What is remembered is bounded: the oldest asks are forgotten first, and forgetting
one only lets it be asked again sooner, which its handler takes as a no-op.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from contracts.internal import InternalCommand

from .outbox import OutboxEntry, Publish

QUIET_SECONDS = 5.0  # at least: an ask is not repeated sooner, however often a sweep runs
REMEMBERED = 200_000  # command ids kept to stay quiet about; about 30 MB at most


def quiet_for(sweep_interval_seconds: float) -> float:
    """How long a service's sweeps stay quiet about an ask: until their next pass."""
    return max(QUIET_SECONDS, sweep_interval_seconds)


class Requests:
    """Internal commands a sweep sends, each at most once per `quiet` seconds."""

    def __init__(
        self,
        publish: Publish,
        topic: str,
        quiet: float = QUIET_SECONDS,
        remembered: int = REMEMBERED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publish = publish
        self.topic = topic
        self.quiet = quiet
        self.remembered = remembered
        self.clock = clock
        # command id -> when it was last asked for, oldest first.
        self._sent: OrderedDict[str, float] = OrderedDict()

    async def send(self, command: InternalCommand) -> bool:
        """Asks for one command; whether it went out (False: asked for too recently)."""
        return await self.send_many((command,)) == 1

    async def send_many(self, commands: Iterable[InternalCommand]) -> int:
        """Asks for each command not asked for within `quiet` seconds, all in one publish
        that returns once the broker has every one; how many went out."""
        now = self.clock()
        self._forget(now)
        fresh: dict[str, InternalCommand] = {}
        for command in commands:
            if command.command_id not in self._sent and command.command_id not in fresh:
                fresh[command.command_id] = command
        if not fresh:
            return 0
        await self.publish([OutboxEntry.of(c, topic=self.topic) for c in fresh.values()])
        for command_id in fresh:
            self._sent[command_id] = now  # new ids only: the order stays oldest first
        self._forget(now)
        return len(fresh)

    def _forget(self, now: float) -> None:
        """Drops the asks older than `quiet`, and the oldest beyond `remembered`."""
        sent = self._sent
        while sent:
            oldest = next(iter(sent.values()))
            if len(sent) <= self.remembered and now - oldest < self.quiet:
                return
            sent.popitem(last=False)
