"""The read API's OpenAPI 3.1 document (`GET /openapi.json`), written out by hand: each
service names its paths with the helpers below; /health, /metrics and the error body are
common. Small on purpose: the messages themselves are specified by contracts/schemas and
the AsyncAPI documents, and a stream's `data:` is exactly one of those events."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

ERROR: Json = {"$ref": "#/components/schemas/Error"}
STRING: Json = {"type": "string"}


def path_parameter(name: str, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": STRING,
    }


def query_parameter(
    name: str, description: str, *, required: bool = False, schema: Json | None = None
) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or STRING,
    }


def page_parameters(cursor: str = "cursor") -> list[Json]:
    return [
        query_parameter("limit", "page size, 1 to 200 (default 50)", schema={"type": "integer"}),
        query_parameter(cursor, "the next_cursor of the previous page"),
    ]


def _error(description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


ACTOR: Json = {
    "name": "X-Actor-Id",
    "in": "header",
    "required": True,
    "description": "the party on whose behalf the read is made (the gateway sets it)",
    "schema": STRING,
}
UNAUTHENTICATED: Json = _error("no X-Actor-Id, or not an id")
STRANGER: Json = _error("no such resource, or not one of the reader's: both answer the same")
NOT_OWN: Json = _error("the list's filter names another party: a list is the reader's own")


def json_read(
    summary: str,
    parameters: list[Json],
    *,
    single: bool = False,
    own_list: bool | None = None,
) -> Json:
    """A GET answering JSON: one resource (404 when unknown or not the reader's) or a page
    of a list (403 when its filter is not the reader's own, unless ``own_list`` is False)."""
    responses: Json = {
        "200": {
            "description": "the resource" if single else 'a page: {"items": [...], "next_cursor"}',
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "400": _error("a parameter is missing or malformed; the message says which and why"),
        "401": UNAUTHENTICATED,
    }
    if own_list if own_list is not None else not single:
        responses["403"] = NOT_OWN
    else:
        responses["404"] = STRANGER
    return {"get": {"summary": summary, "parameters": [ACTOR, *parameters], "responses": responses}}


RESUME_PARAMETERS: list[Json] = [
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "description": "resume after this id (an EventSource sends it when it reconnects)",
        "schema": STRING,
    },
    query_parameter(
        "last_event_id",
        "resume after this id, for a first connect that cannot set headers; "
        "the header wins when both are given",
    ),
]


def event_stream(
    summary: str, parameters: list[Json], events: list[str], *, refused: Json = STRANGER
) -> Json:
    """A GET answering Server-Sent Events (services.runtime.streams)."""
    described = ", ".join(events)
    return {
        "get": {
            "summary": summary,
            "description": (
                f"text/event-stream. One item per {described}: `id:` its position "
                "(opaque, strictly increasing), `event:` the event's type, `data:` the event "
                "exactly as published on its topic. Without Last-Event-ID the stream starts "
                "at its first item. `: keep-alive` comments every STREAM_HEARTBEAT_SECONDS. "
                "A client more than STREAM_CLIENT_BUFFER items behind gets one "
                '`event: overflow` item (`data: {"reason", "last_event_id"}`, no id) and is '
                "disconnected; it resumes with Last-Event-ID."
            ),
            "parameters": [ACTOR, *parameters, *RESUME_PARAMETERS],
            "responses": {
                "200": {
                    "description": "the stream",
                    "content": {"text/event-stream": {"schema": STRING}},
                },
                "400": _error("a malformed Last-Event-ID or a missing parameter, with the reason"),
                "401": UNAUTHENTICATED,
                "403" if refused is NOT_OWN else "404": refused,
                "503": {
                    **_error(
                        "STREAM_MAX_CONNECTIONS streams are open on this instance, or it is "
                        "starting; see Retry-After"
                    ),
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                },
            },
        }
    }


def openapi_document(title: str, paths: Json) -> Json:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{title} read API",
            "version": "1",
            "description": (
                "Reads only; writes go through Kafka (docs/asyncapi). Bound to HTTP_HOST, "
                "loopback by default: it is for the platform's gateway, which authenticates."
            ),
        },
        "paths": {
            "/health": {
                "get": {
                    "summary": "200 when the broker and the database answer, else 503",
                    "responses": {"200": {"description": "ok"}, "503": _error("not ready")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "the text exposition format"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
            **paths,
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string", "description": "a code, e.g. not_found"},
                        "message": {"type": "string", "description": "for a person"},
                        "errors": {
                            "type": "array",
                            "description": "field errors: [{field, message}] (empty here)",
                            "items": {"type": "object"},
                        },
                    },
                }
            }
        },
    }
