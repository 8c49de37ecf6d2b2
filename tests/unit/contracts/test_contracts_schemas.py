"""The committed JSON Schemas match the models (``python -m contracts.schemas --check``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from contracts import COMMAND_TYPES, EVENT_TYPES
from contracts.schemas import DIALECT, RELEASED_DIR, SCHEMA_DIR, check, main, render, write
from tests.unit.contracts.contracts_examples import COMMANDS, EVENTS


def test_committed_schemas_match_the_models() -> None:
    assert check() == [], "stale schemas: run `python -m contracts.schemas`"


def test_one_schema_per_message() -> None:
    names = {p.stem for p in SCHEMA_DIR.glob("*.json")}
    assert names == set(COMMAND_TYPES) | set(EVENT_TYPES)


def test_check_reports_drift(tmp_path: Path) -> None:
    shutil.copytree(SCHEMA_DIR, tmp_path, dirs_exist_ok=True)
    assert check(tmp_path) == []
    (tmp_path / "LogTime.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "AcceptOffer.json").unlink()
    (tmp_path / "Gone.json").write_text("{}\n", encoding="utf-8")
    drift = check(tmp_path)
    assert drift == [
        f"missing: {tmp_path / 'AcceptOffer.json'}",
        f"differs: {tmp_path / 'LogTime.json'}",
        f"unexpected: {tmp_path / 'Gone.json'}",
    ]
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    write(tmp_path)
    assert check(tmp_path) == []
    assert main(["--check", "--dir", str(tmp_path)]) == 0


def test_render_is_stable_and_requires_the_type() -> None:
    text = render(COMMAND_TYPES["ExtendOffer"])
    assert text == render(COMMAND_TYPES["ExtendOffer"])
    assert text.endswith("}\n")
    schema = json.loads(text)
    assert schema["required"][0] == "type"
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["HourlyTerms"]["required"][0] == "contract_type"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_schemas_describe_money_and_times_as_strings(name: str) -> None:
    schema = json.loads(render(COMMAND_TYPES[name]))
    assert set(COMMANDS[name]) <= set(schema["properties"])


def test_event_schemas_cover_the_examples() -> None:
    for name, example in EVENTS.items():
        schema = json.loads(render(EVENT_TYPES[name]))
        assert set(example) <= set(schema["properties"]), name
    money = json.loads(render(EVENT_TYPES["TimeLogged"]))["properties"]["hours"]
    assert money["type"] == "string"


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_each_schema_names_its_dialect_and_is_valid_in_it(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == DIALECT
    Draft202012Validator.check_schema(schema)


def test_the_examples_are_valid_against_the_committed_schemas() -> None:
    """What the models accept, the schemas accept: a consumer validating with them agrees."""
    for name, example in {**COMMANDS, **EVENTS}.items():
        schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(example)]
        assert errors == [], name
    wrong = dict(EVENTS["OfferExtended"], version="1")
    schema = json.loads((SCHEMA_DIR / "OfferExtended.json").read_text(encoding="utf-8"))
    assert not Draft202012Validator(schema).is_valid(wrong)


@pytest.mark.parametrize("path", sorted(RELEASED_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_released_schemas_are_kept_as_released_in_the_same_dialect(path: Path) -> None:
    """The v1 files were released before `$schema` was written and are not rewritten: they
    are read as 2020-12, like every schema released since, which names it."""
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema.get("$schema", DIALECT) == DIALECT
    Draft202012Validator.check_schema(schema)
