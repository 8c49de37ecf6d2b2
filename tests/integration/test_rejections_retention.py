"""The rejections a service remembers are forgotten once neither the command they refused
nor their CommandRejected can be read from its topic any more (FerretDB 1.24 has no TTL
index: the service deletes them itself, at its start and every hour)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pymongo import AsyncMongoClient

from services.messaging_service.app import create_app as messaging_app
from services.runtime.clock import utc_now
from services.runtime.documents import Document
from services.runtime.refusals import refusal_id
from services.runtime.topics import DAY_MS
from tests.conftest import fresh_settings
from tests.infrastructure import Endpoints
from tests.kit import new_id, running

pytestmark = pytest.mark.integration


def rejection(key: str, age: timedelta) -> Document:
    """A rejection as Refusals stores it, stored `age` ago."""
    command_id = new_id("cmd")
    return {
        "_id": refusal_id(key, command_id),
        "key": key,
        "command_id": command_id,
        "revision": 1,
        "created_at": utc_now() - age,
        "outbox": [],
    }


async def test_rejections_past_the_topics_retention_are_forgotten(infra: Endpoints) -> None:
    settings = await fresh_settings(
        infra, "messaging_service", database_name=f"test_rejections_kept_{new_id('db')}"
    )
    kept = timedelta(milliseconds=30 * DAY_MS)  # the default topics' longer retention
    old, recent = rejection("o-1", kept + timedelta(hours=1)), rejection("o-1", kept / 2)
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongodb_url)
    rejections = client[settings.database_name]["rejections"]
    try:
        await rejections.insert_many([old, recent])
        async with running(messaging_app(settings)):
            for _ in range(200):
                if await rejections.find_one({"_id": old["_id"]}) is None:
                    break
                await asyncio.sleep(0.1)
            remaining = [d["_id"] async for d in rejections.find({}, {"_id": 1})]
        assert remaining == [recent["_id"]]
    finally:
        await client.drop_database(settings.database_name)
        await client.close()
