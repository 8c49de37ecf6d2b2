"""Each event's schema admits what its last released version promised consumers, unless
its schema_version was raised and the change written down (contracts/CHANGELOG.md)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from contracts.compat import incompatibilities
from contracts.events import EVENT_TYPES
from contracts.schemas import RELEASED_DIR, released_path, version_of

CHANGELOG = RELEASED_DIR.parents[1] / "CHANGELOG.md"


def schema_of(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = EVENT_TYPES[name].model_json_schema(mode="validation")
    return schema


def latest_release(name: str) -> tuple[int, dict[str, Any]]:
    versions = sorted(int(p.stem.rsplit(".v", 1)[1]) for p in RELEASED_DIR.glob(f"{name}.v*.json"))
    assert versions, f"{name} was never released: run `python -m contracts.schemas --release`"
    return versions[-1], json.loads(released_path(name, versions[-1]).read_text())


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_each_event_stays_readable_by_consumers_of_its_last_release(name: str) -> None:
    version = version_of(EVENT_TYPES[name])
    released, schema = latest_release(name)
    assert version >= released, f"{name}: schema_version {version} is below the released {released}"
    if version > released:
        pytest.fail(
            f"{name}: schema_version {version} is not released: run `python -m contracts."
            f"schemas --release` and describe {name} v{version} in contracts/CHANGELOG.md"
        )
    if version > 1:
        assert f"{name} v{version}" in CHANGELOG.read_text(), f"{name} v{version}: no changelog"
    broken = incompatibilities(schema, schema_of(name))
    assert not broken, (
        f"{name}: backward-incompatible with its released v{released}: {broken}; raise its "
        "schema_version, release it and write the change down for consumers"
    )


def test_an_incompatible_change_is_caught_a_compatible_one_is_not() -> None:
    old = schema_of("OfferAccepted")
    added = copy.deepcopy(old)
    added["properties"]["note"] = {"type": "string"}
    assert incompatibilities(old, added) == []

    removed = copy.deepcopy(old)
    del removed["properties"]["accepted_at"]
    assert incompatibilities(old, removed) == ["accepted_at: removed"]

    required = copy.deepcopy(added)
    required["required"].append("note")
    assert incompatibilities(old, required) == ["note: newly required"]


def test_narrowing_a_type_or_removing_an_enum_value_or_alternative_is_caught() -> None:
    old = schema_of("CommandRejected")
    narrowed = copy.deepcopy(old)
    narrowed["properties"]["status"] = {"type": "string", "maxLength": 64}  # no longer null
    assert any("status" in line and "narrowed" in line for line in incompatibilities(old, narrowed))

    fewer = copy.deepcopy(old)
    codes = fewer["$defs"]["RejectionCode"]["enum"]
    fewer["$defs"]["RejectionCode"]["enum"] = [c for c in codes if c != "unknown_offer"]
    assert incompatibilities(old, fewer) == ["code: enum value(s) removed: ['unknown_offer']"]

    terms_old = schema_of("OfferAccepted")
    fixed_gone = copy.deepcopy(terms_old)
    terms = fixed_gone["properties"]["terms"]
    key = "oneOf" if "oneOf" in terms else "anyOf"
    terms[key] = [t for t in terms[key] if "Fixed" not in json.dumps(t)]
    assert any("alternative" in line for line in incompatibilities(terms_old, fixed_gone))
