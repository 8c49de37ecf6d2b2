"""The gateway's OpenAPI 3.1 document (served at /openapi.json): the command endpoint with
every command's schema from ``contracts/``, the outcome lookup, and the proxied reads and
streams with the events they carry."""

from __future__ import annotations

import re
from typing import Any, Final, get_args

from pydantic.json_schema import models_json_schema

from contracts import (
    AnyCommand,
    CommandRejected,
    FieldError,
    MessagePosted,
    NotificationCreated,
    TermsProposed,
    ThreadClosed,
)

from .commands import ACTOR_HEADER

REF: Final = "#/components/schemas/{model}"
STREAMED: Final = (MessagePosted, TermsProposed, ThreadClosed, NotificationCreated)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {}}}}


def _read(summary: str, service: str, *params: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "description": f"Passed to {service}'s read API (SPEC §6) unchanged.",
            "parameters": [_query(p) for p in params],
            "responses": {
                "200": _json("As the service answers"),
                "400": _error("A query parameter the service cannot use"),
                "404": _error("No such resource"),
                "502": _error("The service is not answering"),
            },
        }
    }


def _query(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _stream(summary: str, service: str, events: tuple[type, ...], *params: dict[str, Any]) -> Any:
    names = ", ".join(e.__name__ for e in events)
    return {
        "get": {
            "summary": summary,
            "description": (
                f"Server-Sent Events, relayed from {service} without buffering. Each item has "
                f"`event:` its type ({names}), `id:` an opaque increasing cursor and `data:` "
                "the event's JSON. Resume with the `Last-Event-ID` header (EventSource sends "
                "it when it reconnects) or `?last_event_id=`: every item missed comes first, "
                "none twice. Comment lines are heartbeats. `event: overflow` means the client "
                "fell behind and is disconnected: reconnect with the last id seen."
            ),
            "parameters": [
                *params,
                {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {}},
                _query("last_event_id"),
            ],
            "responses": {
                "200": {
                    "description": "The stream",
                    "content": {
                        "text/event-stream": {
                            "schema": {"oneOf": [_ref(e.__name__) for e in events]}
                        }
                    },
                },
                "502": _error("The service is not answering"),
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    commands = get_args(AnyCommand)
    models = [*commands, *STREAMED, CommandRejected, FieldError]
    _, schemas = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    components: dict[str, Any] = dict(schemas.get("$defs", {}))
    components["Error"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "a code: invalid_json, invalid_command…"},
            "message": {"type": "string", "description": "for a person"},
            "errors": {"type": "array", "items": _ref("FieldError")},
        },
    }
    actor = {
        "name": ACTOR_HEADER,
        "in": "header",
        "required": True,
        "description": "The authenticated party, set by the authenticating proxy in front "
        "of the gateway. The command's actor_id must be it, or is filled from it.",
        "schema": {"type": "string"},
    }
    paths: dict[str, Any] = {}
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Offers platform gateway",
            "version": "1",
            "description": "The browsers' front door: commands in, reads and streams out.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
    paths |= {
        "/commands": {
            "post": {
                "summary": "Send a command",
                "description": "Checked with contracts/ as the services check it, then "
                "published to its topic keyed by its aggregate id (SPEC §4). The outcome "
                "comes later: see GET /commands/{command_id} and the streams. "
                "`command_id` is made when left out; send one to retry safely.",
                "parameters": [actor],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [_ref(c.__name__) for c in commands],
                                "discriminator": {"propertyName": "type"},
                            }
                        }
                    },
                },
                "responses": {
                    "202": {
                        "description": "Published",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"command_id": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "400": _error("Not JSON, or an invalid command: every field error"),
                    "401": _error(f"No {ACTOR_HEADER}"),
                    "403": _error(f"actor_id is not {ACTOR_HEADER}"),
                    "413": _error("Larger than 1 MiB"),
                    "503": _error("Kafka is not answering; nothing was published"),
                },
            }
        },
        "/commands/{command_id}": {
            "get": {
                "summary": "The outcome of a command sent since the gateway started",
                "parameters": [
                    actor,
                    _path("command_id"),
                    {
                        "name": "wait",
                        "in": "query",
                        "description": "seconds to wait for the outcome (at most 30)",
                        "schema": {"type": "number", "minimum": 0, "maximum": 30},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "status `pending` (no answer seen yet), `done` "
                        "with the `event` it caused, or `rejected` with the `rejection`",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "command_id": {"type": "string"},
                                        "status": {"enum": ["pending", "done", "rejected"]},
                                        "event": {"type": "object"},
                                        "rejection": _ref("CommandRejected"),
                                    },
                                }
                            }
                        },
                    }
                },
            }
        },
        "/api/offers": _read(
            "Offers of a party or job",
            "offer_service",
            "client_id",
            "freelancer_id",
            "job_id",
            "status",
            "limit",
            "cursor",
        ),
        "/api/offers/{offer_id}": _read("An offer with every version", "offer_service"),
        "/api/contracts": _read(
            "Contracts of a party",
            "offer_service",
            "client_id",
            "freelancer_id",
            "limit",
            "cursor",
        ),
        "/api/contracts/{contract_id}": _read("A contract", "offer_service"),
        "/api/talent-clouds/{talent_cloud_id}/members": _read(
            "A Talent Cloud's members", "offer_service", "limit", "cursor"
        ),
        "/api/threads/{offer_id}/messages": _read(
            "An offer's negotiation thread", "messaging_service", "limit", "before"
        ),
        "/api/notifications": _read(
            "A recipient's inbox",
            "notification_service",
            "recipient_id",
            "unread_only",
            "limit",
            "cursor",
        ),
        "/api/notifications/preferences": _read(
            "A recipient's email preferences", "notification_service", "recipient_id"
        ),
        "/api/threads/{offer_id}/stream": _stream(
            "An offer's thread, live",
            "messaging_service",
            (MessagePosted, TermsProposed, ThreadClosed),
            _path("offer_id"),
        ),
        "/api/notifications/stream": _stream(
            "A recipient's inbox, live",
            "notification_service",
            (NotificationCreated,),
            {**_query("recipient_id"), "required": True},
        ),
    }
    _declare_path_parameters(paths)
    return document


def _declare_path_parameters(paths: dict[str, Any]) -> None:
    """Every ``{name}`` in a path is a required path parameter (OpenAPI insists)."""
    for path, operations in paths.items():
        names = re.findall(r"{(\w+)}", path)
        for operation in operations.values():
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            operation["parameters"] += [_path(n) for n in names if n not in declared]
