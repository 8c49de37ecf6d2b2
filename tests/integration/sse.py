"""What the stream tests need: a service app served over real HTTP (uvicorn on a random
port: an in-process ASGI transport buffers whole responses), and a small Server-Sent
Events reader that keeps every field, comments included."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette


@dataclass
class Served:
    app: Starlette
    url: str
    client: httpx.AsyncClient


@asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[Served]:
    """The app on 127.0.0.1 and a random port, once it has started and its streams (if it
    has any) follow their topic."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    try:
        streams = app.state.streams  # None: a service without streams
        while not (
            server.started and app.state.starting.done and (not streams or streams.feed.ready)
        ):
            assert not task.done(), "the server stopped while starting"
            assert app.state.starting.failed is None, app.state.starting.failed
            assert loop.time() < deadline, f"not started after 60s: {app.state.starting.waiting}"
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield Served(app, url, client)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


@dataclass
class Event:
    id: str | None
    event: str | None
    data: str
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


def parse(block: list[str]) -> Event:
    fields: dict[str, list[str]] = {}
    comments = []
    for line in block:
        if line.startswith(":"):
            comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))
    return Event(
        fields.get("id", [None])[-1],
        fields.get("event", [None])[-1],
        "\n".join(fields.get("data", [])),
        comments,
    )


class Stream:
    """One open stream: its items in order, heartbeats counted apart."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        self.heartbeats = 0
        self._lines = response.aiter_lines()

    async def next(self, within: float = 20) -> Event:
        """The next item (not a comment); fails the test after `within` seconds."""
        return await asyncio.wait_for(self._next(), within)

    async def _next(self) -> Event:
        block: list[str] = []
        async for line in self._lines:
            if line:
                block.append(line)
                continue
            if not block:
                continue
            event = parse(block)
            block = []
            if event.event is None and not event.data:
                self.heartbeats += len(event.comments)
                continue
            return event
        raise AssertionError("the stream ended")

    async def items(self, n: int, within: float = 20) -> list[Event]:
        return [await self.next(within) for _ in range(n)]

    async def nothing_more(self, seconds: float = 1.5) -> None:
        """Fails if an item arrives within `seconds`."""
        with contextlib.suppress(TimeoutError):
            extra = await asyncio.wait_for(self._next(), seconds)
            raise AssertionError(f"an item nobody expected: {extra}")


@asynccontextmanager
async def stream(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> AsyncIterator[Stream]:
    async with client.stream("GET", path, headers=headers) as response:
        yield Stream(response)
