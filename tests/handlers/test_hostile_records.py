"""The hostile-input tier (issue "No poison record"): records a hostile producer could send,
derived from the messages' own JSON Schemas, fed through each service's real table. Every
record gets exactly one outcome, no exception escapes, no handler fails on them, nothing a
database cannot hold is stored, and a valid command behind them is still handled."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import COMMAND_TYPES, EVENT_TYPES, topics
from contracts.schemas import MESSAGES
from services.runtime import service as runtime
from services.runtime.documents import MemoryDocuments
from services.runtime.service import Kind
from services.runtime.wire import RecordOrigin
from tests.kit import Parties, hourly_terms
from tests.unit.contracts.contracts_examples import COMMANDS, EVENTS

from .harness import Harness
from .services import messaging_service, notification_service, offer_service

SERVICES: dict[str, Callable[[], Awaitable[Harness]]] = {
    "offer_service": offer_service,
    "messaging_service": messaging_service,
    "notification_service": notification_service,
}
OUTCOMES = {"handled", "invalid", "dead_lettered", "parked", "skipped"}
INT64 = (-(2**63), 2**63 - 1)

HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x1b[31mred\x1b[0m",
    "line\r\nbreak",
    "\u202eevil",
    "x" * 70_000,
    "9999-12-31",
    "0001-01-01",
    "9999-12-31T23:59:59Z",
    "$where",
    "a.b",
    "ghost\x00k",
    "🙂" * 300,
    "-1",
    "1e400",
]
HOSTILE_DATES = [
    "9999-12-31",
    "0001-01-01",
    "2200-01-01",
    "1999-12-31",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "2026-02-30",
]
HOSTILE_NUMBERS = [0, -1, 2**63, -(2**63) - 1, 2**64, 10**40, 1.5, -0.0, 1e308]
HOSTILE_SHAPES: list[Any] = [None, True, [], {}, [[[[[]]]]], {"$gt": ""}, {"a.b": 1}, ["\x00"]]


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def leaf_paths(
    node: dict[str, Any], root: dict[str, Any], path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], set[str]]]:
    """Every field a message's JSON Schema names, with the JSON types it allows there."""
    node = _resolve(node, root)
    alternatives = node.get("anyOf") or node.get("oneOf")
    if alternatives:
        for branch in alternatives:
            yield from leaf_paths(branch, root, path)
        return
    if node.get("type") == "object" and "properties" in node:
        for name, child in node["properties"].items():
            yield from leaf_paths(child, root, (*path, name))
        return
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        yield path, {"array"}
        yield from leaf_paths(node["items"], root, (*path, 0))
        return
    kind = node.get("type", "any")
    types = set(kind) if isinstance(kind, list) else {kind}
    yield path, types | ({f"format:{node['format']}"} if "format" in node else set())


def valid_message(type_: str, key: str) -> dict[str, Any]:
    """A message of `type_` that breaks no rule by itself, for aggregate `key`."""
    example = copy.deepcopy(COMMANDS.get(type_) or EVENTS[type_])
    kind = COMMAND_TYPES.get(type_) or EVENT_TYPES[type_]
    example[kind.KEY_FIELD] = key
    if "command_id" in example:
        example["command_id"] = str(uuid.uuid4())
    if isinstance(example.get("terms"), dict) and example["terms"].get("contract_type") == "hourly":
        example["terms"] = hourly_terms()
    return example


def _set(message: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    """Puts `value` at `path`, making the objects and lists on the way that are missing."""
    node: Any = message
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                return
            if last:
                node[part] = value
                return
            node = node[part]
            continue
        if not isinstance(node, dict):
            return
        if last:
            node[part] = value
            return
        child = node.get(part)
        if not isinstance(child, dict | list) or not child:
            child = {} if isinstance(path[depth + 1], str) else [{}]
            node[part] = child
        node = child


@st.composite
def hostile_value(draw: st.DrawFn, types: set[str]) -> Any:
    pools: list[list[Any]] = [HOSTILE_SHAPES]
    if types & {"format:date", "format:date-time"}:
        pools += [HOSTILE_DATES, HOSTILE_DATES]
    if types & {"string", "any"}:
        pools.append(HOSTILE_TEXT)
    if types & {"integer", "number", "any"}:
        pools.append(HOSTILE_NUMBERS)
    pools.append(HOSTILE_TEXT + HOSTILE_NUMBERS)  # the wrong type, too
    return draw(st.sampled_from(draw(st.sampled_from(pools))))


@st.composite
def hostile_record(draw: st.DrawFn, harness: Harness) -> tuple[str, bytes, str | bytes, str]:
    """(topic, value, key, the key it should have): a message of the topic with up to three
    fields made hostile, or bytes no reader foresaw, under a key that is right, wrong,
    missing or poisonous."""
    ons = [on for on in harness.table.consumes if on.kind is not Kind.INTERNAL]
    on = draw(st.sampled_from(ons))
    own_key = f"agg-{draw(st.integers(0, 3))}"
    kinds = [t for t in (*COMMAND_TYPES, *EVENT_TYPES) if _reads(on.adapter, t)]
    choice = draw(st.integers(0, 9))
    if choice == 0 or not kinds:
        value = draw(
            st.sampled_from(
                [
                    b"",
                    b"\xff\xfe\x00",
                    b"[" * 50_000 + b"]" * 50_000,
                    b'{"type": "ExtendOffer"' + b" " * 10 + b"}",
                    b"null",
                    b'"\\ud800"',
                    b'{"type": "\\u0000"}',
                ]
            )
        )
    else:
        type_ = draw(st.sampled_from(kinds))
        message = valid_message(type_, own_key)
        schema = MESSAGES[type_].model_json_schema(mode="validation")
        paths = list(leaf_paths(schema, schema))
        for _ in range(draw(st.integers(0, 3))):
            path, types = draw(st.sampled_from(paths))
            # A copy: a shared pool value set inside itself would make a circular message.
            _set(message, path, copy.deepcopy(draw(hostile_value(types))))
        if draw(st.integers(0, 5)) == 0:
            message[draw(st.sampled_from(["colour", "$set", "a.b", "\x00"]))] = 1
        value = json.dumps(message).encode()
    key = draw(
        st.sampled_from([own_key, own_key, own_key, "", "k3", f"ghost\x00{own_key}", "k" * 5000])
        | st.just(b"\xff\xfe")
    )
    return on.topic, value, key, own_key


def _reads(adapter: Any, type_: str) -> bool:
    try:
        adapter.validate_python({"type": type_})
    except Exception as error:
        return "union_tag_invalid" not in str(error) and "does not match any of" not in str(error)
    return True


def stored_problems(harness: Harness) -> list[str]:
    """What the database would refuse: NUL characters, keys with . or $, integers beyond
    64 bits, anywhere in any stored document."""
    problems: list[str] = []

    def visit(value: Any, where: str) -> None:
        if isinstance(value, str) and "\x00" in value:
            problems.append(f"{where}: a NUL")
        elif isinstance(value, bool):
            return
        elif isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            problems.append(f"{where}: {value} is beyond 64 bits")
        elif isinstance(value, dict):
            for name, child in value.items():
                if re.search(r"^\$|\.|\x00", str(name)):
                    problems.append(f"{where}: key {name!r}")
                visit(child, f"{where}.{name}")
        elif isinstance(value, list):
            for index, child in enumerate(value):
                visit(child, f"{where}.{index}")

    for documents in _all_documents(harness):
        for document_id, document in documents.documents.items():
            visit(document, f"{documents.name}/{document_id}")
    return problems


def _all_documents(harness: Harness) -> list[MemoryDocuments]:
    found: list[MemoryDocuments] = []
    objects: list[Any] = [harness.storage, getattr(harness.storage, "store", None)]
    for thing in objects:
        for value in vars(thing).values() if thing is not None else ():
            value = getattr(value, "documents", value)
            if isinstance(value, MemoryDocuments) and value not in found:
                found.append(value)
    return found


@pytest.mark.parametrize("service_name", sorted(SERVICES))
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_every_hostile_record_gets_one_outcome(
    service_name: str, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "RETRY_BACKOFF_SECONDS", 0.0)
    harness = await SERVICES[service_name]()
    outcomes: dict[RecordOrigin, list[str]] = {}
    decide = harness.records._outcome

    async def counted(on: Any, message: Any, raw: bytes, origin: RecordOrigin) -> str:
        outcome = await decide(on, message, raw, origin)
        outcomes.setdefault(origin, []).append(outcome)
        return outcome

    harness.records._outcome = counted  # type: ignore[method-assign]
    records = data.draw(st.lists(hostile_record(harness), min_size=1, max_size=8))
    for topic, value, key, own_key in records:
        origin = await harness.send(topic, value, key=key)  # raises if anything escapes
        assert len(outcomes[origin]) == 1, f"{origin}: {outcomes[origin]}"
        [outcome] = outcomes[origin]
        assert outcome in OUTCOMES
        if key != own_key:  # never applied off its aggregate's partition
            assert outcome in {"invalid", "dead_lettered", "skipped"}, (key, value[:200])
    # Dead-lettered only as unreadable: a crash of the reader or of a handler is a bug.
    crashes = [
        e
        for _, _, e in harness.broker.dead_letters
        if e.startswith(("failed", "could not be read"))
    ]
    assert crashes == [], "hostile input broke the service: " + "; ".join(crashes)
    assert stored_problems(harness) == []
    if service_name == "offer_service":  # and nothing is stalled behind them
        p = Parties()
        await harness.send(topics.OFFERS_COMMANDS, p.extend())
        assert len(harness.out("OfferExtended", offer_id=p.offer_id)) == 1


@pytest.mark.parametrize("service_name", sorted(SERVICES))
async def test_every_field_of_every_message_with_every_hostile_value(
    service_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep beside the search: each field the schemas name, each hostile value of its
    type, one at a time, so that no field is left to chance."""
    monkeypatch.setattr(runtime, "RETRY_BACKOFF_SECONDS", 0.0)
    harness = await SERVICES[service_name]()
    sent = 0
    for on in harness.table.consumes:
        if on.kind is Kind.INTERNAL:
            continue
        for type_ in [t for t in (*COMMAND_TYPES, *EVENT_TYPES) if _reads(on.adapter, t)]:
            schema = MESSAGES[type_].model_json_schema(mode="validation")
            for path, types in leaf_paths(schema, schema):
                values = [*HOSTILE_SHAPES, *HOSTILE_TEXT, *HOSTILE_NUMBERS]
                if types & {"format:date", "format:date-time"}:
                    values += HOSTILE_DATES
                for value in values:
                    message = valid_message(type_, "agg-1")
                    _set(message, path, value)
                    before = len(harness.broker.dead_letters)
                    await harness.send(on.topic, json.dumps(message).encode())
                    sent += 1
                    for _, _, error in harness.broker.dead_letters[before:]:
                        assert not error.startswith(("failed", "could not be read")), (
                            f"{type_}.{'.'.join(map(str, path))} = {value!r:.60}: {error}"
                        )
    assert stored_problems(harness) == []
    assert harness.outcome_count("dead_lettered") + harness.outcome_count("invalid") > sent / 2
