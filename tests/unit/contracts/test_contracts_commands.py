"""Commands (SPEC §4) and ``parse_command``: field rules, unions, dead-letter cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts import (
    COMMAND_ADAPTERS,
    COMMAND_TOPICS,
    COMMAND_TYPES,
    CONTRACT_COMMAND_ADAPTER,
    MAX_MESSAGE_BYTES,
    NEGOTIATION_COMMAND_ADAPTER,
    NOTIFICATION_COMMAND_ADAPTER,
    OFFER_COMMAND_ADAPTER,
    AcceptOffer,
    ChangeOffer,
    Command,
    CommandRejected,
    ExtendOffer,
    FieldError,
    HourlyTerms,
    InvalidCommand,
    LogTime,
    MarkNotificationsRead,
    PostMessage,
    ProposeTerms,
    RejectionCode,
    UnreadableCommand,
    WithdrawOffer,
    command_violations,
    parse_command,
    topics,
)
from tests.unit.contracts.contracts_examples import COMMANDS, RULES, fixed, hourly, raw

TOPIC_OF = {
    "ExtendOffer": topics.OFFERS_COMMANDS,
    "ChangeOffer": topics.OFFERS_COMMANDS,
    "WithdrawOffer": topics.OFFERS_COMMANDS,
    "AcceptOffer": topics.OFFERS_COMMANDS,
    "DeclineOffer": topics.OFFERS_COMMANDS,
    "PostMessage": topics.NEGOTIATIONS_COMMANDS,
    "ProposeTerms": topics.NEGOTIATIONS_COMMANDS,
    "LogTime": topics.CONTRACTS_COMMANDS,
    "MarkNotificationsRead": topics.NOTIFICATIONS_COMMANDS,
    "SetNotificationPreferences": topics.NOTIFICATIONS_COMMANDS,
}


def parse(data: dict[str, Any] | bytes | str) -> Any:
    body = raw(data) if isinstance(data, dict) else data
    text = body.decode() if isinstance(body, bytes) else body
    type_ = json.loads(text).get("type") if text.startswith("{") else "ExtendOffer"
    adapter = COMMAND_ADAPTERS[TOPIC_OF.get(type_, topics.OFFERS_COMMANDS)]
    return parse_command(adapter, body, **RULES)


def rejected(data: dict[str, Any]) -> list[FieldError]:
    result = parse(data)
    assert isinstance(result, InvalidCommand), result
    return result.errors


def with_(name: str, **changes: Any) -> dict[str, Any]:
    data = dict(COMMANDS[name], **changes)
    return {k: v for k, v in data.items() if v is not ...}


# --- every example parses, by bytes and by dict, and dispatches to its class -----------------


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_examples_parse_from_bytes_and_dicts(name: str) -> None:
    command = parse(COMMANDS[name])
    assert type(command) is COMMAND_TYPES[name]
    adapter = COMMAND_ADAPTERS[TOPIC_OF[name]]
    assert adapter.validate_python(COMMANDS[name]) == command
    assert COMMAND_TYPES[name].model_validate(COMMANDS[name]) == command
    assert COMMAND_TYPES[name].model_validate_json(raw(COMMANDS[name])) == command


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_commands_round_trip(name: str) -> None:
    command = parse(COMMANDS[name])
    assert COMMAND_TYPES[name].model_validate_json(command.model_dump_json()) == command
    assert COMMAND_TYPES[name].model_validate(command.model_dump(mode="json")) == command
    assert COMMAND_TYPES[name].model_validate(command.model_dump()) == command


def test_every_command_type_belongs_to_exactly_one_topic() -> None:
    assert set(TOPIC_OF) == set(COMMAND_TYPES)
    assert COMMAND_TOPICS == TOPIC_OF
    assert set(COMMAND_ADAPTERS) == {
        topics.OFFERS_COMMANDS,
        topics.NEGOTIATIONS_COMMANDS,
        topics.CONTRACTS_COMMANDS,
        topics.NOTIFICATIONS_COMMANDS,
    }


def test_command_keys() -> None:
    assert parse(COMMANDS["ExtendOffer"]).key == "offer-1"
    assert parse(COMMANDS["LogTime"]).key == "contract-1"
    assert parse(COMMANDS["MarkNotificationsRead"]).key == "client-1"


def test_commands_can_be_built_in_python_without_type() -> None:
    command = WithdrawOffer(command_id="c", actor_id="a", offer_id="o")
    assert json.loads(command.model_dump_json())["type"] == "WithdrawOffer"
    with pytest.raises(ValidationError):
        command.offer_id = "other"  # type: ignore[misc]


# --- dead-letter cases -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[1]",
        b'"ExtendOffer"',
        b"{}",
        b'{"type": 5}',
        b'{"type": "Nope"}',
        b'{"type": null}',
        b"\xff\xfe{}",
    ],
)
def test_unreadable_messages_go_to_the_dead_letter_topic(body: bytes) -> None:
    assert isinstance(parse_command(OFFER_COMMAND_ADAPTER, body, **RULES), UnreadableCommand)


@pytest.mark.parametrize(
    ("adapter", "name"),
    [
        (OFFER_COMMAND_ADAPTER, "LogTime"),
        (CONTRACT_COMMAND_ADAPTER, "ExtendOffer"),
        (NOTIFICATION_COMMAND_ADAPTER, "PostMessage"),
        (NEGOTIATION_COMMAND_ADAPTER, "MarkNotificationsRead"),
    ],
)
def test_a_command_on_the_wrong_topic_is_an_unknown_type(
    adapter: TypeAdapter[Any], name: str
) -> None:
    result = parse_command(adapter, raw(COMMANDS[name]), **RULES)
    assert isinstance(result, UnreadableCommand)
    assert name in result.error


def test_messages_over_1_mib_are_unreadable() -> None:
    big = with_("PostMessage", text="x" * MAX_MESSAGE_BYTES)
    result = parse_command(NEGOTIATION_COMMAND_ADAPTER, raw(big), **RULES)
    assert isinstance(result, UnreadableCommand)
    assert "larger than" in result.error


# --- shape errors: envelope ------------------------------------------------------------------


def test_unknown_fields_are_rejected_with_their_path() -> None:
    data = with_("ExtendOffer", mesage="typo", terms=hourly(titel="typo"))
    assert rejected(data) == [
        FieldError(field="terms.titel", message="is not a field of hourly terms"),
        FieldError(field="mesage", message="is not a known field"),
    ]


@pytest.mark.parametrize("name", ["command_id", "actor_id"])
def test_command_id_and_actor_id_are_required_ids(name: str) -> None:
    assert rejected(with_("AcceptOffer", **{name: ...})) == [
        FieldError(field=name, message="is required")
    ]
    assert [e.field for e in rejected(with_("AcceptOffer", **{name: "not an id"}))] == [name]


def test_issued_at_is_optional_utc() -> None:
    assert isinstance(parse(with_("AcceptOffer", issued_at=None)), AcceptOffer)
    assert [e.field for e in rejected(with_("AcceptOffer", issued_at="2026-11-26T12:00:00"))] == [
        "issued_at"
    ]


def test_invalid_command_carries_what_the_rejection_needs() -> None:
    result = parse(with_("ExtendOffer", command_id="bad id", terms=hourly(title="")))
    assert isinstance(result, InvalidCommand)
    assert (result.command_type, result.command_id, result.actor_id, result.key) == (
        "ExtendOffer",
        None,
        "client-1",
        "offer-1",
    )
    event = result.rejection(event_id="evt-9", occurred_at=datetime(2026, 11, 26, tzinfo=UTC))
    assert isinstance(event, CommandRejected)
    assert event.code is RejectionCode.INVALID_COMMAND
    assert event.causation_id is None
    assert event.message == "ExtendOffer is invalid: 2 problems"
    assert [e.field for e in event.errors] == ["command_id", "terms.title"]
    wire = json.loads(event.model_dump_json())
    assert wire["occurred_at"] == "2026-11-26T00:00:00Z"
    assert wire["errors"][1] == {"field": "terms.title", "message": "must not be empty"}


# --- per-command fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["offer_id", "job_id", "proposal_id", "client_id", "freelancer_id", "terms"]
)
def test_extend_offer_required_fields(name: str) -> None:
    assert rejected(with_("ExtendOffer", **{name: ...})) == [
        FieldError(field=name, message="is required")
    ]


def test_extend_offer_message_at_most_5000() -> None:
    assert isinstance(parse(with_("ExtendOffer", message="x" * 5000)), ExtendOffer)
    assert isinstance(parse(with_("ExtendOffer", message=None)), ExtendOffer)
    assert rejected(with_("ExtendOffer", message="x" * 5001)) == [
        FieldError(field="message", message="must be at most 5000 characters")
    ]


def test_client_and_freelancer_must_differ() -> None:
    assert rejected(with_("ExtendOffer", freelancer_id="client-1")) == [
        FieldError(field="freelancer_id", message="must differ from client_id")
    ]


def test_extend_offer_reports_shape_errors_and_rules_together() -> None:
    data = with_(
        "ExtendOffer",
        freelancer_id="client-1",
        job_id="",
        terms=hourly(hourly_rate=45, start_date="2026-11-01", end_date="2026-10-01"),
    )
    assert [e.field for e in rejected(data)] == [
        "job_id",
        "terms.hourly_rate",
        "terms.start_date",
        "terms.end_date",
        "freelancer_id",
    ]


def test_extend_offer_terms_rules_when_shape_is_fine() -> None:
    data = with_("ExtendOffer", terms=fixed(total_amount="1.00"))
    assert rejected(data) == [
        FieldError(
            field="terms.total_amount",
            message="must equal the sum of the milestone amounts (800.00)",
        )
    ]


def test_extend_offer_terms_dispatch_on_contract_type() -> None:
    command = parse(COMMANDS["ExtendOffer"])
    assert isinstance(command.terms, HourlyTerms)
    fixed_offer = parse(with_("ExtendOffer", terms=fixed()))
    assert fixed_offer.terms.contract_type == "fixed"


def test_change_offer_needs_complete_terms_checked_against_the_rules() -> None:
    assert isinstance(parse(COMMANDS["ChangeOffer"]), ChangeOffer)
    assert [e.field for e in rejected(with_("ChangeOffer", terms={"title": "x"}))] == [
        "terms.contract_type"
    ]
    assert [e.field for e in rejected(with_("ChangeOffer", terms=hourly(hourly_rate=...)))] == [
        "terms.hourly_rate"
    ]
    late = hourly(end_date="2027-12-31")
    assert [e.field for e in rejected(with_("ChangeOffer", terms=late))] == ["terms.end_date"]
    assert [e.field for e in rejected(with_("ChangeOffer", in_response_to="a b"))] == [
        "in_response_to"
    ]


@pytest.mark.parametrize("name", ["WithdrawOffer", "DeclineOffer"])
def test_reason_is_optional_at_most_1000(name: str) -> None:
    assert isinstance(parse(with_(name, reason=...)), COMMAND_TYPES[name])
    assert isinstance(parse(with_(name, reason="x" * 1000)), COMMAND_TYPES[name])
    assert rejected(with_(name, reason="x" * 1001)) == [
        FieldError(field="reason", message="must be at most 1000 characters")
    ]


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (0, "must be at least 1"),
        ("2", "must be an integer"),
        (2.0, "must be an integer"),
        (True, "must be an integer"),
        (..., "is required"),
    ],
)
def test_accept_offer_version_is_a_strict_positive_int(version: Any, message: str) -> None:
    assert rejected(with_("AcceptOffer", version=version)) == [
        FieldError(field="version", message=message)
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must not be empty"),
        ("  ", "must not be blank"),
        ("x" * 5001, "must be at most 5000 characters"),
        (..., "is required"),
    ],
)
def test_post_message_text(text: Any, message: str) -> None:
    assert isinstance(parse(with_("PostMessage", text="x" * 5000)), PostMessage)
    assert rejected(with_("PostMessage", text=text)) == [FieldError(field="text", message=message)]


def test_post_message_needs_a_message_id() -> None:
    assert [e.field for e in rejected(with_("PostMessage", message_id=...))] == ["message_id"]


def test_propose_terms_changes() -> None:
    command = parse(COMMANDS["ProposeTerms"])
    assert isinstance(command, ProposeTerms)
    assert command.changes.model_fields_set == {"hourly_rate", "po_number"}
    assert rejected(with_("ProposeTerms", changes={})) == [
        FieldError(field="changes", message="must change at least one terms field")
    ]
    assert rejected(with_("ProposeTerms", changes={"hourly_rat": "1.00"})) == [
        FieldError(field="changes.hourly_rat", message="is not a known field")
    ]
    assert rejected(with_("ProposeTerms", changes={"weekly_limit_hours": 200})) == [
        FieldError(field="changes.weekly_limit_hours", message="must be at most 168")
    ]
    assert [e.field for e in rejected(with_("ProposeTerms", text="x" * 5001))] == ["text"]
    assert isinstance(parse(with_("ProposeTerms", text=...)), ProposeTerms)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hours": "24.01"}, "hours"),
        ({"hours": "0"}, "hours"),
        ({"hours": 8}, "hours"),
        ({"hours": "7.555"}, "hours"),
        ({"work_date": "2026-12-02T00:00:00Z"}, "work_date"),
        ({"memo": "x" * 1001}, "memo"),
        ({"entry_id": ...}, "entry_id"),
    ],
)
def test_log_time_fields(changes: dict[str, Any], field: str) -> None:
    assert [e.field for e in rejected(with_("LogTime", **changes))] == [field]


def test_log_time_accepts_whole_and_fractional_hours() -> None:
    for hours in ("24", "0.25", "8.5"):
        assert isinstance(parse(with_("LogTime", hours=hours, memo=...)), LogTime)


def test_mark_notifications_read_ids() -> None:
    ok = with_("MarkNotificationsRead", notification_ids=[f"n-{i}" for i in range(500)])
    assert isinstance(parse(ok), MarkNotificationsRead)
    assert rejected(with_("MarkNotificationsRead", notification_ids=[])) == [
        FieldError(field="notification_ids", message="must have at least 1 item")
    ]
    too_many = [f"n-{i}" for i in range(501)]
    assert rejected(with_("MarkNotificationsRead", notification_ids=too_many)) == [
        FieldError(field="notification_ids", message="must have at most 500 items")
    ]
    assert [
        e.field for e in rejected(with_("MarkNotificationsRead", notification_ids=["ok", "no way"]))
    ] == ["notification_ids.1"]


def test_command_violations_on_parsed_commands() -> None:
    command = ExtendOffer.model_validate(with_("ExtendOffer", freelancer_id="client-1"))
    assert command_violations(command, **RULES) == [
        FieldError(field="freelancer_id", message="must differ from client_id")
    ]
    other: Command = parse(COMMANDS["LogTime"])
    assert command_violations(other, **RULES) == []


def test_preferences_refuse_an_invalid_address_and_unknown_kinds_on_their_fields() -> None:
    errors = rejected(
        with_(
            "SetNotificationPreferences",
            email="ann-at-example.com",
            email_kinds=["offer_received", "offer_lost"],
            digest_kinds=["everything"],
        )
    )
    fields = [error.field for error in errors]
    assert fields == ["email", "email_kinds.1", "digest_kinds.0"], errors
    assert "@" in errors[0].message


def test_preferences_normalize_the_address_stop_with_null_and_default_the_digest() -> None:
    command = parse(with_("SetNotificationPreferences", email="Ann@Example.COM", digest_kinds=...))
    assert command.email == "Ann@example.com"
    assert command.digest_kinds == ["new_message"]
    stopped = parse(with_("SetNotificationPreferences", email=None, email_kinds=["all"]))
    assert stopped.email is None and stopped.email_kinds == ["all"]
