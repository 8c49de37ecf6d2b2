"""The pure parts of the pushed streams: ids, where a client resumes, the merge of the
stored and the live items, and what a client that falls behind gets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sse_starlette import ServerSentEvent
from starlette.requests import Request

from services.runtime.http import BadRequest
from services.runtime.streams import (
    Client,
    Hub,
    Item,
    TooManyClients,
    merged,
    parse_position,
    resume_position,
)


def item(position: int | None, text: str = "") -> Item:
    return Item(position, "MessagePosted", json.dumps({"n": position, "text": text}))


class Stored:
    """The database's side: the items stored so far, and every position it was asked after."""

    def __init__(self, *positions: int) -> None:
        self.items = [item(p) for p in positions]
        self.asked: list[int] = []

    async def after(self, position: int) -> AsyncIterator[Item]:
        self.asked.append(position)
        for stored in list(self.items):  # what was stored when asked
            if stored.position is not None and stored.position > position:
                yield stored


async def take(events: AsyncIterator[ServerSentEvent], n: int) -> list[ServerSentEvent]:
    taken = []
    async for event in events:
        taken.append(event)
        if len(taken) == n:
            break
    return taken


def data_of(event: ServerSentEvent) -> Any:
    assert isinstance(event.data, str)
    return json.loads(event.data)


def ids(events: list[ServerSentEvent]) -> list[str | None]:
    return [event.id for event in events]


def request(headers: dict[str, str] | None = None, query: str = "") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "headers": raw, "query_string": query.encode()})


# --- ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["0", "1", "42", " 7 ", str(2**63 - 1)])
def test_a_position_is_a_whole_number(raw: str) -> None:
    assert parse_position(raw, "Last-Event-ID") == int(raw)


@pytest.mark.parametrize("raw", ["", "-1", "1.5", "abc", "1e3", "٣", str(2**63), "9" * 30])
def test_a_malformed_position_is_refused_with_what_was_given(raw: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_position(raw, "Last-Event-ID")
    assert "Last-Event-ID must be the id of an item this stream sent" in refused.value.message
    assert repr(raw) in refused.value.message


def test_without_an_id_the_stream_starts_at_its_first_item() -> None:
    assert resume_position(request()) == 0


def test_the_query_parameter_resumes_a_first_connect() -> None:
    assert resume_position(request(query="last_event_id=12")) == 12


def test_the_header_wins_over_the_query_parameter_of_the_first_connect() -> None:
    assert resume_position(request({"Last-Event-ID": "30"}, "last_event_id=12")) == 30


def test_a_malformed_query_parameter_is_named_in_the_refusal() -> None:
    with pytest.raises(BadRequest, match="last_event_id must be"):
        resume_position(request(query="last_event_id=x"))


# --- the merge -------------------------------------------------------------------------------


async def test_stored_items_come_first_then_live_ones_each_once_in_order() -> None:
    hub = Hub(max_clients=10, buffer=10)
    client = hub.join("offer-1")
    stored = Stored(1, 2, 3)
    # Live items that arrived while the database was read: 2 and 3 are stored as well.
    for position in (2, 3, 4, 5):
        hub.deliver("offer-1", item(position))
    events = await take(merged(client, 0, stored.after), 5)
    assert ids(events) == ["1", "2", "3", "4", "5"]
    assert [e.event for e in events] == ["MessagePosted"] * 5
    assert data_of(events[3]) == {"n": 4, "text": ""}


async def test_a_resume_gets_only_what_came_after_its_id() -> None:
    client = Hub(max_clients=1, buffer=10).join("offer-1")
    stored = Stored(1, 2, 3, 4)
    client.offer(item(5))
    assert ids(await take(merged(client, 2, stored.after), 3)) == ["3", "4", "5"]
    assert stored.asked == [2]


async def test_a_live_item_without_a_position_is_read_from_the_database_in_order() -> None:
    client = Hub(max_clients=1, buffer=10).join("offer-1")
    stored = Stored(1)
    events = merged(client, 0, stored.after)
    assert ids(await take(events, 1)) == ["1"]
    stored.items += [item(2), item(3)]  # published by an older version: no stream id
    client.offer(item(None))
    client.offer(item(3))  # a later copy of one the database gave: not sent twice
    client.offer(item(4))
    assert ids(await take(events, 3)) == ["2", "3", "4"]
    assert stored.asked == [0, 1]


async def test_items_of_other_keys_are_not_delivered() -> None:
    hub = Hub(max_clients=10, buffer=10)
    mine, theirs = hub.join("offer-1"), hub.join("offer-2")
    hub.deliver("offer-2", item(1))
    assert mine.queue.empty() and theirs.queue.qsize() == 1


async def test_a_client_that_falls_behind_gets_one_overflow_item_and_the_stream_ends() -> None:
    hub = Hub(max_clients=10, buffer=3)
    slow, fast = hub.join("offer-1"), hub.join("offer-1")
    for position in range(1, 6):  # 5 items, room for 3
        hub.deliver("offer-1", item(position))
        await asyncio.sleep(0)
    assert fast.cut_off_because is not None  # nobody read: both are behind
    events = [event async for event in merged(slow, 0, Stored().after)]
    [overflow] = events
    assert overflow.event == "overflow" and overflow.id is None
    assert data_of(overflow) == {
        "reason": "you fell behind by more than 3 items; reconnect with Last-Event-ID: 0",
        "last_event_id": "0",
    }


async def test_a_client_that_keeps_up_is_not_cut_off_by_a_slow_one() -> None:
    hub = Hub(max_clients=10, buffer=3)
    slow, fast = hub.join("offer-1"), hub.join("offer-1")
    following = merged(fast, 0, Stored().after)
    received = []
    for position in range(1, 11):
        hub.deliver("offer-1", item(position))
        received += ids(await take(following, 1))
    assert received == [str(p) for p in range(1, 11)]
    assert fast.cut_off_because is None
    assert slow.cut_off_because is not None
    [overflow] = [event async for event in merged(slow, 0, Stored().after)]
    assert overflow.event == "overflow"


async def test_the_overflow_item_names_the_last_id_the_client_got() -> None:
    client = Client("offer-1", buffer=2)
    events = merged(client, 0, Stored(1, 2).after)
    assert ids(await take(events, 2)) == ["1", "2"]
    for position in (3, 4, 5):
        client.offer(item(position))
    # Cut off at once: what it missed, 3 to 5, it reads again after the id it names.
    [overflow] = [event async for event in events]
    assert overflow.event == "overflow"
    assert data_of(overflow)["last_event_id"] == "2"


async def test_cutting_off_wakes_a_client_waiting_for_its_next_item() -> None:
    client = Client("offer-1", buffer=5)
    events = merged(client, 0, Stored().after)
    waiting = asyncio.create_task(take(events, 1))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    client.cut_off("the live feed restarted; reconnect with Last-Event-ID")
    [overflow] = await asyncio.wait_for(waiting, 1)
    assert overflow.event == "overflow"
    assert "the live feed restarted" in data_of(overflow)["reason"]


# --- the connection bound ---------------------------------------------------------------------


def test_the_hub_refuses_a_client_beyond_its_bound_and_makes_room_when_one_leaves() -> None:
    hub = Hub(max_clients=2, buffer=1)
    first = hub.join("a")
    hub.join("b")
    with pytest.raises(TooManyClients):
        hub.join("c")
    hub.leave(first)
    hub.leave(first)  # told twice: counted once
    assert hub.count == 1
    hub.join("c")
    assert hub.count == 2
