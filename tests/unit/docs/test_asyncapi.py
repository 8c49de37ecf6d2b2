"""The AsyncAPI documents under docs/ are what the code says, and whole."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts import topics
from services.asyncapi import DOCS_DIR, SERVICES, document, drift
from services.processes import TABLES


def expected_channels(service: str) -> set[str]:
    """What its table says it reads and writes (the default deployment: group = name)."""
    table = TABLES[service].for_group(service)
    return {f"{t}:consume" for t in table.consumed_topics} | {
        f"{t}:publish" for t in table.publishes
    }


def test_each_service_reads_what_spec_1_says() -> None:
    reads = {name: set(TABLES[name].for_group(name).consumed_topics) for name in TABLES}
    assert reads == {
        "offer_service": {"offers.commands", "contracts.commands", "offer_service.internal"},
        "messaging_service": {
            "negotiations.commands",
            "offers.events",
            "messaging_service.internal",
        },
        "notification_service": {
            "offers.events",
            "contracts.events",
            "talent-clouds.events",
            "negotiations.events",
            "notifications.commands",
            "notification_service.internal",
        },
    }


def test_the_committed_documents_match_the_code() -> None:
    assert drift() == [], "run `make docs` and commit docs/asyncapi"


def test_a_changed_document_is_reported_as_drift(tmp_path: Any) -> None:
    for service in SERVICES:
        (tmp_path / f"{service}.json").write_text((DOCS_DIR / f"{service}.json").read_text())
    path = tmp_path / "offer_service.json"
    path.write_text(path.read_text().replace("ExtendOffer", "ExtendOfferX", 1))
    assert drift(tmp_path) == [f"differs from the code: {path}"]


def resolve(spec: dict[str, Any], ref: str) -> Any:
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


@pytest.mark.parametrize("service", SERVICES)
def test_every_channel_and_message_is_described_and_every_ref_resolves(service: str) -> None:
    spec = json.loads(json.dumps(document(service)))
    assert spec["asyncapi"] == "3.0.0"
    assert set(spec["channels"]) == expected_channels(service)
    for channel in spec["channels"].values():
        assert channel["description"] == topics.description(channel["address"])
        assert channel["messages"], channel["address"]
    for name, message in spec["components"]["messages"].items():
        assert message["summary"] and message["summary"] != name, name
    for ref in refs(spec):
        resolve(spec, ref)  # a KeyError names the dangling reference
    offers_commands = spec["channels"].get("offers.commands:consume", {"messages": {}})
    if service == "offer_service":
        assert set(offers_commands["messages"]) == {
            "ExtendOffer",
            "ChangeOffer",
            "WithdrawOffer",
            "AcceptOffer",
            "DeclineOffer",
        }
        extend = resolve(spec, "#/components/schemas/ExtendOffer")
        assert "terms" in extend["required"]
