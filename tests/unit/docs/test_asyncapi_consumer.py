"""A consumer in another language can use docs/asyncapi/offer_service.json: Modelina (AsyncAPI's
own model generator, pinned in tools/asyncapi) makes TypeScript models of its messages, and
an OfferExtended and an OfferAccepted, serialized exactly as offer_service publishes them,
type-check against those models with tsc and validate against the document's schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from contracts import EVENT_TYPES
from services.asyncapi import DOCS_DIR
from tests.unit.contracts.contracts_examples import EVENTS, fixed
from tests.unit.docs.node_tools import TOOLS, TSC, run_node

DOCUMENT = DOCS_DIR / "offer_service.json"


def published(name: str, **changes: Any) -> dict[str, Any]:
    """An event as offer_service publishes it: the model's `model_dump_json()` (outbox.py)."""
    event = EVENT_TYPES[name].model_validate_json(json.dumps({**EVENTS[name], **changes}))
    recorded: dict[str, Any] = json.loads(event.model_dump_json())
    return recorded


RECORDED = {
    "OfferExtended": published("OfferExtended"),  # hourly terms
    "OfferAccepted": published("OfferAccepted", terms=fixed()),  # fixed terms and milestones
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The consumer's step: `node tools/asyncapi/models.cjs <document> <directory>`."""
    directory = tmp_path_factory.mktemp("consumer") / "models"
    result = run_node(TOOLS / "models.cjs", DOCUMENT, directory)
    assert result.returncode == 0, f"Modelina failed:\n{result.stdout}{result.stderr}"
    return directory


def typecheck(directory: Path, events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """tsc's errors for a file that assigns each recorded event to its generated type."""
    lines = [
        f"import {{ {name} }} from './models/{name}';" for name in sorted({n for n, _ in events})
    ]
    lines += [
        f"export const event{i}: {name} = {json.dumps(e)};" for i, (name, e) in enumerate(events)
    ]
    source = directory.parent / f"recorded_{len(list(directory.parent.glob('*.ts')))}.ts"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_node(
        TSC, "--noEmit", "--strict", "--target", "es2022", "--module", "commonjs", source
    )
    errors = [line for line in result.stdout.splitlines() if "error TS" in line]
    assert errors or result.returncode == 0, f"tsc failed:\n{result.stdout}{result.stderr}"
    return errors


def test_the_generated_models_cover_the_events_and_both_kinds_of_terms(models: Path) -> None:
    generated = {path.stem for path in models.glob("*.ts")}
    assert {"OfferExtended", "OfferAccepted", "HourlyTerms", "FixedTerms", "Milestone"} <= generated
    terms = (models / "OfferAccepted.ts").read_text(encoding="utf-8")
    assert "'terms': HourlyTerms | FixedTerms;" in terms
    assert """'contract_type': "hourly";""" in (models / "HourlyTerms.ts").read_text("utf-8")


def test_recorded_events_type_check_against_the_generated_models(models: Path) -> None:
    assert typecheck(models, list(RECORDED.items())) == []


def test_an_event_the_models_do_not_describe_fails_the_type_check(models: Path) -> None:
    """The same check catches a type changed, a tag misspelt and a field the models lack."""
    extended = RECORDED["OfferExtended"]
    errors = typecheck(
        models,
        [
            ("OfferExtended", dict(extended, version="1")),
            ("OfferExtended", dict(extended, terms=dict(extended["terms"], contract_type="day"))),
            ("OfferExtended", dict(extended, expiry=None)),
        ],
    )
    assert len(errors) == 3, errors
    assert "Type 'string' is not assignable to type 'number'" in errors[0]
    assert """Type '"day"' is not assignable to type '"fixed" | "hourly"'""" in errors[1]
    assert """'"expiry"' does not exist in type 'OfferExtended'""" in errors[2]


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_events_are_valid_against_the_documents_payload_schemas(name: str) -> None:
    """AsyncAPI's Schema Object is a superset of JSON Schema draft-07: a consumer that
    validates payloads (ajv, jsonschema) takes the schema from the document as it is."""
    spec = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    payload = spec["components"]["messages"][name]["payload"]
    validator = Draft7Validator({**payload, "components": spec["components"]})
    assert [error.message for error in validator.iter_errors(RECORDED[name])] == []
    assert not validator.is_valid(dict(RECORDED[name], version=0))
