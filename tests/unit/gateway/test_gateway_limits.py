"""The per-actor limits: a token bucket for commands, a count of open streams."""

from __future__ import annotations

import pytest

from services.gateway.limits import CommandRate, OpenStreams, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_command_per_refill_interval() -> None:
    clock = Clock()
    rate = CommandRate(per_minute=6, burst=2, clock=clock)
    assert [rate.take("ann"), rate.take("ann")] == [0.0, 0.0]
    assert rate.take("ann") == pytest.approx(10.0)  # one token per 10 s
    assert rate.take("bob") == 0.0  # each actor has a bucket of their own
    clock.now = 5.0
    assert rate.take("ann") == pytest.approx(5.0)
    clock.now = 10.0
    assert rate.take("ann") == 0.0
    clock.now = 1_000.0  # idle: back to the burst, never beyond
    assert [rate.take("ann") for _ in range(3)][:2] == [0.0, 0.0]
    assert retry_after(0.2) == "1" and retry_after(9.1) == "10"


def test_idle_actors_are_forgotten_when_there_are_too_many() -> None:
    clock = Clock()
    rate = CommandRate(per_minute=60, burst=1, clock=clock, max_actors=2)
    rate.take("ann")
    rate.take("bob")
    clock.now = 5.0  # both refilled
    rate.take("eve")
    assert set(rate._buckets) == {"eve"}


def test_streams_are_counted_per_actor_and_released_once() -> None:
    streams = OpenStreams(per_actor=2)
    first, second = streams.open("ann"), streams.open("ann")
    assert first is not None and second is not None
    assert streams.open("ann") is None
    assert streams.open("bob") is not None
    first()
    first()  # released twice (the relay and the background task): counted once
    assert streams.count("ann") == 1
    assert streams.open("ann") is not None
