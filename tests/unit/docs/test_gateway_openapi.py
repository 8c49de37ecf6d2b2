"""The gateway's OpenAPI 3.1 document: every command, the outcome lookup, the proxied reads
and the streams, with every reference resolving."""

from __future__ import annotations

import json
from typing import Any

import httpx

from contracts import COMMAND_TYPES
from services.gateway.app import create_app
from services.gateway.openapi import openapi_document
from services.gateway.settings import GatewaySettings


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_every_reference_resolves_and_every_path_parameter_is_declared() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    for path, operations in document["paths"].items():
        for operation in operations.values():
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == {part[1:-1] for part in path.split("/") if part[:1] == "{"}, path


def test_the_command_endpoint_takes_every_command_and_the_streams_name_their_events() -> None:
    paths = openapi_document()["paths"]
    body = paths["/commands"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {ref.rsplit("/", 1)[1] for ref in refs(body)} == set(COMMAND_TYPES)
    assert {"202", "400", "401", "403", "413", "415", "429", "503"} <= set(
        paths["/commands"]["post"]["responses"]
    )
    for path in ("/api/threads/{offer_id}/stream", "/api/notifications/stream"):
        assert {"401", "403", "404", "429"} <= set(paths[path]["get"]["responses"]), path
    assert {"401", "404"} <= set(paths["/api/offers/{offer_id}"]["get"]["responses"])
    thread = paths["/api/threads/{offer_id}/stream"]["get"]["responses"]["200"]["content"]
    assert {r.rsplit("/", 1)[1] for r in refs(thread["text/event-stream"])} == {
        "MessagePosted",
        "TermsProposed",
        "ThreadClosed",
    }
    assert "/api/notifications/stream" in paths
    assert "/commands/{command_id}" in paths


async def test_the_gateway_serves_it() -> None:
    app = create_app(GatewaySettings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        served = await client.get("/openapi.json")
        page = await client.get("/")
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(openapi_document()))
    assert page.status_code == 200 and '<script type="module" src="app.js">' in page.text
