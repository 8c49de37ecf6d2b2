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


READER: Final = {
    "name": ACTOR_HEADER,
    "in": "header",
    "required": True,
    "description": "The signed-in party, set by the authenticating proxy; passed on to the "
    "service, which shows each resource to its parties only.",
    "schema": {"type": "string"},
}
WHO_MAY_READ: Final = {
    "401": _error(f"No {ACTOR_HEADER}, or not an id"),
    "403": _error("A list's filter names another party: a list is the reader's own"),
    "404": _error("No such resource, or not the reader's: both answer the same"),
}


def _read(summary: str, service: str, *params: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "description": f"Passed to {service}'s read API (SPEC §6) with the reader.",
            "parameters": [READER, *(_query(p) for p in params)],
            "responses": {
                "200": _json("As the service answers"),
                "400": _error("A query parameter the service cannot use"),
                **WHO_MAY_READ,
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
                READER,
                *params,
                {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {}},
                _query("last_event_id"),
                {
                    **_query("actor_id"),
                    "description": f"The page's party, for an EventSource (it cannot set "
                    f"{ACTOR_HEADER}); taken only on the local stand-in (GATEWAY_PAGE_ACTOR) "
                    "and only without the header",
                },
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
                **WHO_MAY_READ,
                "429": {
                    **_error(
                        "The actor has GATEWAY_STREAMS_PER_ACTOR streams open through this "
                        "gateway already; see Retry-After"
                    ),
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
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
                    "403": _error(
                        f"actor_id is not {ACTOR_HEADER} (actor_mismatch), or the request "
                        "comes from another site's page: its Origin is neither the gateway's "
                        "nor in GATEWAY_ALLOWED_ORIGINS (cross_origin)"
                    ),
                    "413": _error("Larger than 1 MiB (refused while reading)"),
                    "415": _error("Not sent as Content-Type: application/json"),
                    "429": {
                        **_error(
                            "The actor sent more than GATEWAY_COMMAND_BURST commands at once "
                            "or GATEWAY_COMMANDS_PER_MINUTE a minute; see Retry-After"
                        ),
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    },
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
                        "description": "status `pending` (no answer seen yet, or the "
                        "command is another party's: its outcome is shown to its actor only), "
                        "`done` with the `event` it caused, or `rejected` with the `rejection`",
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
                    },
                    "400": _error("wait is not a number of seconds"),
                    "401": _error(f"No {ACTOR_HEADER}"),
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
