"""What one signed-in actor may hold of the gateway: commands per minute (so one client
cannot flood a freelancer's inbox) and open streams (so one actor cannot hold every
connection). Both are per gateway instance, in memory: N instances let an actor have N
times as much, which bounds a flood without any shared state."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class CommandRate:
    """A token bucket per actor: ``burst`` commands at once, refilled at ``per_minute``."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_actors: int = 100_000,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self.max_actors = max_actors
        self._buckets: dict[str, _Bucket] = {}

    def take(self, actor: str) -> float:
        """0 if the actor may send a command now (one is taken), else the seconds until
        they may."""
        now = self.clock()
        bucket = self._buckets.get(actor)
        if bucket is None:
            self._forget_idle(now)
            bucket = self._buckets[actor] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        """A bucket refilled to the brim is the same as none: dropped when memory is short."""
        if len(self._buckets) < self.max_actors:
            return
        full = [
            actor
            for actor, b in self._buckets.items()
            if b.tokens + (now - b.at) * self.rate >= self.burst
        ]
        for actor in full:
            del self._buckets[actor]


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class OpenStreams:
    """How many streams each actor has open through this instance."""

    def __init__(self, per_actor: int) -> None:
        self.per_actor = per_actor
        self._open: dict[str, int] = {}

    def open(self, actor: str) -> Callable[[], None] | None:
        """A release to call once the stream ends (calling it again does nothing), or None
        when the actor has its maximum open already."""
        if self._open.get(actor, 0) >= self.per_actor:
            return None
        self._open[actor] = self._open.get(actor, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._open.get(actor, 0) - 1
            if left > 0:
                self._open[actor] = left
            else:
                self._open.pop(actor, None)

        return release

    def count(self, actor: str) -> int:
        return self._open.get(actor, 0)
