"""The AsyncAPI 3.0 document of each service, committed under docs/asyncapi/.

FastStream knows each service's channels and operations (its subscribers and declared
publishers); contracts/ knows what travels on them. The documents join the two: every
channel lists each message type of its topic, with the JSON Schema pydantic derives.

    python -m services.asyncapi           rewrite docs/asyncapi/*.json
    python -m services.asyncapi --check   exit 1 when they differ from the code (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import TypeAdapter
from starlette.applications import Starlette

from contracts import (
    COMMAND_ADAPTERS,
    COMMAND_REJECTED_ADAPTER,
    EVENT_ADAPTERS,
    EVENT_TOPICS,
    topics,
)
from contracts.internal import INTERNAL_ADAPTERS

from .messaging_service.app import create_app as messaging_app
from .notification_service.app import create_app as notification_app
from .offer_service.app import create_app as offer_app

DOCS_DIR: Final = Path(__file__).resolve().parents[1] / "docs" / "asyncapi"
VERSION: Final = "1.0.0"
SCHEMAS: Final = "#/components/schemas/{model}"

SERVICES: Final[dict[str, tuple[Callable[[], Starlette], str]]] = {
    "offer_service": (
        offer_app,
        "Offers and contracts: takes the parties' offer commands and time logs, publishes "
        "what happened, activates a contract when an offer is accepted and expires offers "
        "after 30 days. Reads: GET /offers, /contracts, /talent-clouds/{id}/members.",
    ),
    "messaging_service": (
        messaging_app,
        "The negotiation thread of each offer: messages and counter-proposals between its "
        "client and freelancer, closed when the offer is. Reads: GET /threads/{offer_id}/messages.",
    ),
    "notification_service": (
        notification_app,
        "One notification per event and recipient, and reminders before an offer expires. "
        "Reads: GET /notifications.",
    ),
}

MESSAGES_BY_TOPIC: Final[dict[str, TypeAdapter[Any]]] = {
    **COMMAND_ADAPTERS,
    **EVENT_ADAPTERS,
    topics.COMMANDS_REJECTED: COMMAND_REJECTED_ADAPTER,
}

DEAD_LETTERED_RECORD: Final = {
    "name": "DeadLetteredRecord",
    "title": "DeadLetteredRecord",
    "summary": "A record that could not be read as a command, its bytes unchanged.",
    "contentType": "application/octet-stream",
    "headers": {
        "type": "object",
        "properties": {
            "source_topic": {"type": "string"},
            "source_partition": {"type": "string", "description": "a whole number"},
            "source_offset": {"type": "string", "description": "a whole number"},
            "error": {"type": "string", "description": "why it could not be read"},
        },
        "required": ["source_topic", "source_partition", "source_offset", "error"],
    },
    "payload": {"type": "string", "format": "binary"},
}


def document(service: str) -> dict[str, Any]:
    create_app, description = SERVICES[service]
    broker: KafkaBroker = create_app().state.broker
    spec: dict[str, Any] = (
        AsyncAPI(broker, title=service, version=VERSION, description=description)
        .to_specification()
        .to_jsonable()
    )
    # Where the broker is comes from the environment at run time, not from the code.
    spec["servers"]["development"]["host"] = "127.0.0.1:9092"
    spec["servers"]["development"]["description"] = "set by KAFKA_BOOTSTRAP_SERVERS"
    _name_consumed_channels(spec)
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for channel in spec["channels"].values():
        topic = channel["address"]
        channel["description"] = topics.description(topic)
        found = _messages_of(service, topic, schemas)
        messages.update(found)
        channel["messages"] = {name: {"$ref": f"#/components/messages/{name}"} for name in found}
    for operation in spec["operations"].values():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[1]
        operation["messages"] = [
            {"$ref": f"#/channels/{channel}/messages/{message}"}
            for message in spec["channels"][channel]["messages"]
        ]
        operation["summary"] = (
            f"{service} {'reads' if operation['action'] == 'receive' else 'writes'} "
            f"{spec['channels'][channel]['address']}"
        )
    _title_discriminating_properties(schemas)
    spec["components"] = {"messages": messages, "schemas": dict(sorted(schemas.items()))}
    return spec


def _name_consumed_channels(spec: dict[str, Any]) -> None:
    """`<topic>:consume`, like the publishers' `<topic>:publish`: the one subscriber set
    over all the service's topics would name them `consume:<topic>`."""
    renamed = {
        name: f"{channel['address']}:consume"
        for name, channel in spec["channels"].items()
        if name.startswith("consume:")
    }
    spec["channels"] = {renamed.get(k, k): v for k, v in sorted(spec["channels"].items())}
    operations = {}
    for name, operation in spec["operations"].items():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[1]
        if channel in renamed:
            operation["channel"]["$ref"] = f"#/channels/{renamed[channel]}"
            name = renamed[channel]
        operations[name] = operation
    spec["operations"] = dict(sorted(operations.items()))


def _messages_of(service: str, topic: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """The message objects of a topic; their payload schemas go into `schemas`."""
    adapter = (
        INTERNAL_ADAPTERS[service] if topics.is_internal(topic) else MESSAGES_BY_TOPIC.get(topic)
    )
    if adapter is None:
        return {"DeadLetteredRecord": DEAD_LETTERED_RECORD}
    schema = asyncapi_schema(adapter.json_schema(ref_template=SCHEMAS, mode="validation"))
    schemas.update(schema.pop("$defs", {}))
    if "oneOf" in schema:
        names = [ref["$ref"].rsplit("/", 1)[1] for ref in schema["oneOf"]]
    elif "$ref" in schema:
        names = [schema["$ref"].rsplit("/", 1)[1]]
    else:  # a single model, inlined
        names = [schema["title"]]
        schemas[schema["title"]] = schema
    return {name: _message(name, topic, schemas[name]) for name in names}


def asyncapi_schema(node: Any) -> Any:
    """Pydantic's JSON Schema as an AsyncAPI Schema Object: the same, but `discriminator`.

    Pydantic writes OpenAPI's discriminator object, `{"propertyName": …, "mapping": …}`;
    AsyncAPI's Schema Object wants the property's name, a string, and refuses the document
    otherwise. The mapping adds nothing: each alternative fixes that property with a `const`,
    which is what Modelina reads to tell the alternatives apart.
    """
    if isinstance(node, list):
        return [asyncapi_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: asyncapi_schema(value) for key, value in node.items()}
    if isinstance(node.get("discriminator"), dict):
        converted["discriminator"] = node["discriminator"]["propertyName"]
    return converted


def _title_discriminating_properties(schemas: dict[str, Any]) -> None:
    """Each alternative's discriminating property gets a title of its own, "HourlyTerms
    Contract Type": code generators name the type of that `const` after its title, and with
    pydantic's "Contract Type" on both alternatives Modelina writes both types to one
    ContractType file, the second overwriting the first."""

    def unions(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, list):
            return [found for item in node for found in unions(item)]
        if not isinstance(node, dict):
            return []
        own = [node] if isinstance(node.get("discriminator"), str) else []
        return own + [found for value in node.values() for found in unions(value)]

    for union in unions(schemas):
        field = union["discriminator"]
        for alternative in union["oneOf"]:
            name = alternative["$ref"].rsplit("/", 1)[1]
            schemas[name]["properties"][field]["title"] = (
                f"{name} {field.replace('_', ' ').title()}"
            )


def _event_headers(name: str) -> dict[str, Any]:
    """The Kafka headers on every event (services.runtime.outbox): CloudEvents 1.0 binary
    mode, beside the service's own."""

    def header(description: str, **schema: Any) -> dict[str, Any]:
        return {"type": "string", "description": description, **schema}

    properties = {
        "ce_specversion": header("CloudEvents spec version", const="1.0"),
        "ce_id": header("CloudEvents id: the event_id of the payload"),
        "ce_type": header("CloudEvents type: the payload's type", const=name),
        "ce_source": header(
            "CloudEvents source: /offers-platform/ and the topic", pattern="^/offers-platform/"
        ),
        "ce_time": header("CloudEvents time: the payload's occurred_at (RFC 3339, UTC)"),
        "ce_subject": header("CloudEvents subject: the aggregate id, as the record key"),
        "content-type": header("CloudEvents datacontenttype", const="application/json"),
        "type": header("the payload's type (before CloudEvents; kept)", const=name),
        "event_id": header("the payload's event_id (before CloudEvents; kept)"),
    }
    return {"type": "object", "properties": properties, "required": sorted(properties)}


def _message(name: str, topic: str, schema: dict[str, Any]) -> dict[str, Any]:
    headers = {"headers": _event_headers(name)} if topic in EVENT_TOPICS.values() else {}
    return {
        "name": name,
        "title": name,
        "summary": " ".join(schema.get("description", name).split("\n\n")[0].split()),
        "contentType": "application/json",
        "payload": {"$ref": SCHEMAS.format(model=name)},
        **headers,
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": topics.key_of(topic)},
                "bindingVersion": "0.5.0",
            }
        },
    }


def render(service: str) -> str:
    return json.dumps(document(service), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def drift(directory: Path = DOCS_DIR) -> list[str]:
    """One line per document that differs from the code; empty when none does."""
    problems = []
    for service in SERVICES:
        path = directory / f"{service}.json"
        if not path.exists():
            problems.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != render(service):
            problems.append(f"differs from the code: {path}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report drift")
    if parser.parse_args().check:
        problems = drift()
        for line in problems:
            print(f"{line} (run `make docs`)", file=sys.stderr)
        return 1 if problems else 0
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    for service in SERVICES:
        path = DOCS_DIR / f"{service}.json"
        path.write_text(render(service), encoding="utf-8")
        print(f"wrote {path.relative_to(DOCS_DIR.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
