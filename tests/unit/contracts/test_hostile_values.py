"""Values a MongoDB-compatible store cannot hold, or that make no sense, are refused by the
contracts themselves, with the field's path (issue "No poison record"): never a crash, never
a write that the database refuses after the sender was told 202."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import (
    COMMAND_ADAPTERS,
    FieldError,
    InvalidCommand,
    UnreadableCommand,
    parse_command,
    topics,
)
from tests.unit.contracts.contracts_examples import COMMANDS, RULES, hourly, raw


def refused(data: dict[str, Any], topic: str = topics.OFFERS_COMMANDS) -> list[FieldError]:
    outcome = parse_command(COMMAND_ADAPTERS[topic], raw(data), **RULES)
    assert isinstance(outcome, InvalidCommand), outcome
    return outcome.errors


def extend(**terms: Any) -> dict[str, Any]:
    return {**COMMANDS["ExtendOffer"], "terms": hourly(**terms)}


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2200-01-01", "1999-12-31"])
def test_dates_off_the_calendar_are_refused_on_their_field(day: str) -> None:
    errors = refused(extend(start_date=day, end_date=day))
    assert (
        FieldError(field="terms.start_date", message="must be between 2000-01-01 and 2199-12-31")
        in errors
    )
    assert all(e.field.startswith("terms.") for e in errors)


def test_a_start_more_than_two_years_ahead_is_refused() -> None:
    errors = refused(extend(start_date="2029-01-01", end_date="2029-02-01"))
    assert errors == [
        FieldError(
            field="terms.start_date",
            message="must be at most 730 days after today (on or before 2028-11-25)",
        )
    ]


def test_an_issued_at_in_year_9999_is_refused() -> None:
    errors = refused({**COMMANDS["AcceptOffer"], "issued_at": "9999-12-31T23:59:59Z"})
    assert errors == [
        FieldError(field="issued_at", message="must be between 2000-01-01 and 2199-12-31")
    ]


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b", "\x7f", "\n", "\t", "\r"])
def test_control_characters_in_one_line_text_are_refused(character: str) -> None:
    errors = refused(extend(title=f"Checkout{character}redesign"))
    assert errors == [
        FieldError(field="terms.title", message="must be one line without control characters")
    ]


@pytest.mark.parametrize("character", ["\x00", "\x08", "\x0b", "\x1f", "\x7f"])
def test_control_characters_in_free_text_are_refused(character: str) -> None:
    errors = refused(
        {**COMMANDS["PostMessage"], "text": f"hi{character}"}, topics.NEGOTIATIONS_COMMANDS
    )
    assert errors == [
        FieldError(
            field="text",
            message="must not contain control characters (newline and tab are allowed)",
        )
    ]


def test_newlines_and_tabs_are_free_text() -> None:
    data = {**COMMANDS["PostMessage"], "text": "line one\n\tline two"}
    parsed = parse_command(COMMAND_ADAPTERS[topics.NEGOTIATIONS_COMMANDS], raw(data), **RULES)
    assert not isinstance(parsed, InvalidCommand | UnreadableCommand)


@pytest.mark.parametrize("key", ["a.b", "$set", "a\x00b"])
def test_custom_field_keys_a_database_reads_as_paths_are_refused(key: str) -> None:
    errors = refused(extend(custom_fields={key: "v"}))
    assert [e.message for e in errors] == [
        "key must be 1-64 characters of letters, digits, _ and -"
    ]
    assert all(not re.search(r"[\x00-\x1f\x7f]", e.field) for e in errors)


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**40])
def test_integers_beyond_64_bits_are_refused(value: int) -> None:
    errors = refused(extend(custom_fields={"headcount": value}))
    assert errors == [
        FieldError(
            field="terms.custom_fields.headcount", message="must be an integer of at most 64 bits"
        )
    ]


def test_a_version_beyond_64_bits_is_refused() -> None:
    errors = refused({**COMMANDS["AcceptOffer"], "version": 2**64})
    assert [e.field for e in errors] == ["version"]


def test_64_bit_integers_themselves_are_taken() -> None:
    for value in (2**63 - 1, -(2**63)):
        data = extend(custom_fields={"n": value})
        outcome = parse_command(COMMAND_ADAPTERS[topics.OFFERS_COMMANDS], raw(data), **RULES)
        assert not isinstance(outcome, InvalidCommand | UnreadableCommand), outcome


def test_deep_nesting_is_unreadable_not_a_crash() -> None:
    body = '{"type": "ExtendOffer", "terms": ' + "[" * 200_000 + "]" * 200_000 + "}"
    outcome = parse_command(COMMAND_ADAPTERS[topics.OFFERS_COMMANDS], body, **RULES)
    assert isinstance(outcome, UnreadableCommand | InvalidCommand)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def mangled_commands(draw: st.DrawFn) -> bytes:
    """A real command with one field, at any depth, replaced by any JSON value."""
    data = json.loads(json.dumps(COMMANDS[draw(st.sampled_from(sorted(COMMANDS)))]))
    node: Any = data
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and draw(st.booleans()):
            node = child
            continue
        node[key] = draw(json_values)
        return json.dumps(data).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(COMMAND_ADAPTERS)), mangled_commands() | st.binary(max_size=200))
def test_parse_command_has_an_answer_for_any_bytes(topic: str, body: bytes) -> None:
    outcome = parse_command(COMMAND_ADAPTERS[topic], body, **RULES)
    if isinstance(outcome, InvalidCommand):
        assert outcome.errors, "a refusal names at least one field"
        for error in outcome.errors:  # a refusal can be stored and shown: no control characters
            assert not re.search(r"[\x00-\x1f\x7f]", error.field), error.field
