"""A sweep's asks (services.runtime.requests): each internal command at most once per quiet
period, a batch in one publish, and a bounded memory of what was asked."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from contracts.internal import ExpireOffer
from services.runtime.outbox import OutboxEntry
from services.runtime.requests import QUIET_SECONDS, Requests, quiet_for

TOPIC = "offer_service.internal"


class Recorded:
    def __init__(self) -> None:
        self.calls: list[list[OutboxEntry]] = []

    async def __call__(self, entries: Sequence[OutboxEntry]) -> None:
        self.calls.append(list(entries))

    @property
    def ids(self) -> list[str]:
        return [entry.message_id for call in self.calls for entry in call]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def expire(n: int) -> ExpireOffer:
    return ExpireOffer(command_id=f"expire-{n}", offer_id=f"offer-{n}")


async def test_a_batch_goes_out_in_one_publish_each_command_once() -> None:
    published = Recorded()
    requests = Requests(published, TOPIC, clock=Clock())
    commands = [expire(n) for n in range(3000)]
    assert await requests.send_many([*commands, *commands[:10]]) == 3000
    assert len(published.calls) == 1
    assert published.ids == [c.command_id for c in commands]
    assert {entry.topic for entry in published.calls[0]} == {TOPIC}
    assert [entry.key for entry in published.calls[0][:2]] == ["offer-0", "offer-1"]


async def test_asked_again_only_after_the_quiet_period() -> None:
    published, clock = Recorded(), Clock()
    requests = Requests(published, TOPIC, quiet=5.0, clock=clock)
    assert await requests.send_many([expire(1), expire(2)]) == 2
    clock.now += 4.9
    assert await requests.send_many([expire(1), expire(2), expire(3)]) == 1  # only the new one
    assert not await requests.send(expire(1))
    clock.now += 0.1  # 5 s since 1 and 2 were asked
    assert await requests.send_many([expire(1), expire(2), expire(3)]) == 2
    assert published.ids == ["expire-1", "expire-2", "expire-3", "expire-1", "expire-2"]
    assert await requests.send_many([]) == 0
    assert len(published.calls) == 3  # nothing to ask, nothing published


async def test_what_is_remembered_is_bounded_oldest_forgotten_first() -> None:
    published, clock = Recorded(), Clock()
    requests = Requests(published, TOPIC, quiet=60.0, remembered=1000, clock=clock)
    for start in range(0, 5000, 500):
        clock.now += 0.01
        await requests.send_many(expire(n) for n in range(start, start + 500))
    assert len(requests._sent) == 1000
    # The newest are still quiet; the oldest were forgotten and may be asked again.
    assert not await requests.send(expire(4999))
    assert await requests.send(expire(0))


async def test_a_failed_publish_is_not_remembered() -> None:
    class Failing(Recorded):
        async def __call__(self, entries: Sequence[OutboxEntry]) -> None:
            raise ConnectionError("broker gone")

    requests = Requests(Failing(), TOPIC, clock=Clock())
    with pytest.raises(ConnectionError):
        await requests.send_many([expire(1)])
    published = Recorded()
    requests.publish = published
    assert await requests.send(expire(1))  # asked again at once: the first never went out
    assert published.ids == ["expire-1"]


async def test_a_sweep_asks_once_per_pass_however_long_the_pass_reads() -> None:
    """A pass that reads for longer than QUIET_SECONDS (a burst among 1M offers) finds the
    same due work again later in the pass: with its interval as the quiet period it is not
    asked for twice, and the next pass asks again."""
    published, clock = Recorded(), Clock()
    requests = Requests(published, TOPIC, quiet=quiet_for(60), clock=clock)
    assert quiet_for(60) == 60 and quiet_for(1) == QUIET_SECONDS
    assert await requests.send_many([expire(1)]) == 1
    clock.now += 8.0  # the same pass, still reading its buckets
    assert await requests.send_many([expire(1)]) == 0
    clock.now += 52.0  # the next pass
    assert await requests.send_many([expire(1)]) == 1
