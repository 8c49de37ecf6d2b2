"""Every OpenAPI document served (each service's read API and the gateway's) is valid
OpenAPI 3.1 by openapi-spec-validator: what consumers' client generators read."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.applications import Starlette

from services.gateway.openapi import openapi_document
from services.messaging_service.app import create_app as messaging_app
from services.notification_service.app import create_app as notification_app
from services.offer_service.app import create_app as offer_app
from services.runtime.config import Settings

SERVICES: dict[str, Callable[[Settings], Starlette]] = {
    "offer_service": offer_app,
    "messaging_service": messaging_app,
    "notification_service": notification_app,
}


def problems(document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(document)'}: {error.message}"
        for error in OpenAPIV31SpecValidator(document).iter_errors()
    ]


async def served(service: str) -> dict[str, Any]:
    app = SERVICES[service](Settings.from_env(service, 0))
    transport = httpx.ASGITransport(app=app)  # no lifespan: nothing is connected
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


@pytest.mark.parametrize("service", SERVICES)
async def test_each_services_read_api_document_is_valid_openapi(service: str) -> None:
    assert problems(await served(service)) == []


def test_the_gateways_document_is_valid_openapi() -> None:
    assert problems(openapi_document()) == []


def test_an_invalid_document_is_reported() -> None:
    document = copy.deepcopy(openapi_document())
    document["info"]["version"] = 1
    document["paths"]["/commands"]["post"]["parameters"] = [{"name": "command", "in": "body"}]
    found = problems(document)
    assert any(line.startswith("info/version:") for line in found), found
    assert any(line.startswith("paths//commands/post/parameters/0") for line in found), found
