"""Each service's read API serves its OpenAPI document, naming every route it serves."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from services.messaging_service.app import create_app as messaging_app
from services.notification_service.app import create_app as notification_app
from services.offer_service.app import create_app as offer_app
from services.runtime.config import Settings


@pytest.mark.parametrize(
    ("create", "name", "streams"),
    [
        (offer_app, "offer_service", set()),
        (messaging_app, "messaging_service", {"/threads/{offer_id}/stream"}),
        (notification_app, "notification_service", {"/notifications/stream"}),
    ],
)
async def test_the_document_names_every_route_and_the_streams_as_event_streams(
    create: object, name: str, streams: set[str]
) -> None:
    assert callable(create)
    app: Starlette = create(Settings.from_env(name, 0))
    transport = httpx.ASGITransport(app=app)  # no lifespan: nothing is connected
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    served = {route.path for route in app.routes if isinstance(route, Route)}
    assert set(document["paths"]) == served
    for path, operations in document["paths"].items():
        content = operations["get"]["responses"]["200"].get("content", {})
        assert ("text/event-stream" in content) == (path in streams), path
