"""Events (SPEC §5): wire form, round trips, unions, field rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import (
    EVENT_ADAPTERS,
    EVENT_TYPES,
    OFFER_EVENT_ADAPTER,
    CommandRejected,
    FieldError,
    NotificationKind,
    OfferAccepted,
    OfferExtended,
    RejectionCode,
    TermsProposed,
    TimeLogged,
    errors_from_validation,
    topics,
)
from tests.unit.contracts.contracts_examples import COMMANDS, EVENTS, fixed, hourly, raw

TOPIC_OF = {
    **dict.fromkeys(
        [
            "OfferExtended",
            "OfferChanged",
            "OfferWithdrawn",
            "OfferDeclined",
            "OfferExpired",
            "OfferAccepted",
        ],
        topics.OFFERS_EVENTS,
    ),
    "ContractActivated": topics.CONTRACTS_EVENTS,
    "TimeLogged": topics.CONTRACTS_EVENTS,
    "TalentCloudMemberAdded": topics.TALENT_CLOUDS_EVENTS,
    "MessagePosted": topics.NEGOTIATIONS_EVENTS,
    "TermsProposed": topics.NEGOTIATIONS_EVENTS,
    "ThreadClosed": topics.NEGOTIATIONS_EVENTS,
    "NotificationCreated": topics.NOTIFICATIONS_EVENTS,
    "NotificationPreferencesChanged": topics.NOTIFICATIONS_EVENTS,
    "CommandRejected": topics.COMMANDS_REJECTED,
}


def with_(name: str, **changes: Any) -> dict[str, Any]:
    data = dict(EVENTS[name], **changes)
    return {k: v for k, v in data.items() if v is not ...}


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def event_errors(name: str, **changes: Any) -> list[FieldError]:
    with pytest.raises(ValidationError) as info:
        EVENT_TYPES[name].model_validate_json(raw(with_(name, **changes)))
    return errors_from_validation(info.value)


def test_every_event_has_an_example_and_a_topic() -> None:
    assert set(EVENTS) == set(EVENT_TYPES) == set(TOPIC_OF)
    assert set(EVENT_ADAPTERS) == set(TOPIC_OF.values())


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_examples_dispatch_on_their_topic_and_round_trip(name: str) -> None:
    adapter = EVENT_ADAPTERS[TOPIC_OF[name]]
    event = adapter.validate_json(raw(EVENTS[name]))
    assert type(event) is EVENT_TYPES[name]
    assert adapter.validate_python(EVENTS[name]) == event
    assert adapter.validate_json(event.model_dump_json()) == event
    assert adapter.validate_python(event.model_dump(mode="json")) == event
    assert EVENT_TYPES[name].model_validate(event.model_dump()) == event
    # The wire form is exactly the example (absent optional fields are written as null).
    assert without_nulls(json.loads(event.model_dump_json())) == without_nulls(EVENTS[name])


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_unknown_type_on_an_events_topic_is_detectable(name: str) -> None:
    adapter = EVENT_ADAPTERS[TOPIC_OF[name]]
    with pytest.raises(ValidationError) as info:
        adapter.validate_json(raw(with_(name, type="SomethingElse")))
    assert [e["type"] for e in info.value.errors()] == ["union_tag_invalid"]


def test_events_tolerate_unknown_fields() -> None:
    event = OFFER_EVENT_ADAPTER.validate_json(raw(with_("OfferWithdrawn", added_later=1)))
    assert "added_later" not in event.model_dump()


def test_event_envelope_rules() -> None:
    assert event_errors("OfferWithdrawn", event_id=...) == [
        FieldError(field="event_id", message="is required")
    ]
    assert event_errors("OfferWithdrawn", schema_version=0) == [
        FieldError(field="schema_version", message="must be at least 1")
    ]
    assert [e.field for e in event_errors("OfferWithdrawn", occurred_at="2026-11-26")] == [
        "occurred_at"
    ]
    assert event_errors("OfferWithdrawn", causation_id=None) == [
        FieldError(field="causation_id", message="must be a string")
    ]
    defaulted = with_("OfferWithdrawn", schema_version=...)
    assert OFFER_EVENT_ADAPTER.validate_python(defaulted).schema_version == 1


def test_event_keys() -> None:
    for name, field in [
        ("OfferExtended", "offer_id"),
        ("ContractActivated", "contract_id"),
        ("TalentCloudMemberAdded", "talent_cloud_id"),
        ("TermsProposed", "offer_id"),
        ("NotificationCreated", "recipient_id"),
    ]:
        event = EVENT_TYPES[name].model_validate(EVENTS[name])
        assert event.key == EVENTS[name][field]


def test_wire_form_uses_strings_for_money_and_z_times() -> None:
    event = OfferExtended.model_validate(EVENTS["OfferExtended"])
    wire = json.loads(event.model_dump_json())
    assert wire["terms"]["hourly_rate"] == "45.00"
    assert wire["expires_at"] == "2026-12-26T12:00:00Z"
    assert wire["terms"]["start_date"] == "2026-12-01"
    assert event.model_dump(mode="json") == wire
    python = event.model_dump()
    assert python["expires_at"] == datetime(2026, 12, 26, 12, tzinfo=UTC)
    assert python["terms"]["hourly_rate"] == "45.00"


def test_offer_events_carry_whole_terms() -> None:
    assert [e.field for e in event_errors("OfferAccepted", terms={"title": "x"})] == [
        "terms.contract_type"
    ]
    accepted = OfferAccepted.model_validate(with_("OfferAccepted", terms=fixed()))
    assert accepted.terms.contract_type == "fixed"
    assert event_errors("OfferExtended", terms=hourly(hourly_rate=1)) == [
        FieldError(
            field="terms.hourly_rate",
            message='must be a decimal string like "45.00", not a JSON number',
        )
    ]


def test_offer_declined_has_a_proposal_id() -> None:
    assert event_errors("OfferDeclined", proposal_id=...) == [
        FieldError(field="proposal_id", message="is required")
    ]


def test_time_logged_hours() -> None:
    assert TimeLogged.model_validate(EVENTS["TimeLogged"]).hours == Decimal("7.5")
    assert [e.field for e in event_errors("TimeLogged", hours="25")] == ["hours"]


def test_terms_proposed_keeps_only_given_changes() -> None:
    event = TermsProposed.model_validate(EVENTS["TermsProposed"])
    assert json.loads(event.model_dump_json())["changes"] == {
        "hourly_rate": "50.00",
        "po_number": None,
    }


@pytest.mark.parametrize("reason", ["accepted", "declined", "withdrawn", "expired"])
def test_thread_closed_reasons(reason: str) -> None:
    EVENT_TYPES["ThreadClosed"].model_validate(with_("ThreadClosed", reason=reason))


def test_thread_closed_rejects_other_reasons() -> None:
    assert [e.field for e in event_errors("ThreadClosed", reason="bored")] == ["reason"]


def test_notification_kinds_are_the_spec_table() -> None:
    assert set(get_args(NotificationKind)) == {
        "offer_received",
        "offer_changed",
        "offer_withdrawn",
        "offer_accepted",
        "offer_declined",
        "offer_expired",
        "offer_expiring",
        "contract_active",
        "talent_cloud_joined",
        "new_message",
        "terms_proposed",
    }
    assert [e.field for e in event_errors("NotificationCreated", kind="spam")] == ["kind"]
    assert [e.field for e in event_errors("NotificationCreated", source_event_id=...)] == [
        "source_event_id"
    ]


def test_rejection_codes_are_the_spec_list() -> None:
    assert {c.value for c in RejectionCode} == {
        "invalid_command",
        "unknown_offer",
        "unknown_contract",
        "not_authorized",
        "offer_exists",
        "invalid_state",
        "offer_expired",
        "version_mismatch",
        "thread_closed",
        "not_hourly",
        "outside_contract_dates",
        "weekly_limit_exceeded",
        # beyond SPEC's list: README, "No poison record"
        "wrong_key",
        "too_many_versions",
    }
    assert [e.field for e in event_errors("CommandRejected", code="nope")] == ["code"]


def test_command_rejected_fields() -> None:
    rejected = CommandRejected.model_validate(
        with_(
            "CommandRejected",
            code="invalid_state",
            errors=...,
            status="accepted",
            causation_id=None,
            command_id=None,
            actor_id=None,
        )
    )
    assert rejected.errors == []
    assert rejected.status == "accepted"
    assert rejected.code == RejectionCode.INVALID_STATE
    assert json.loads(rejected.model_dump_json())["code"] == "invalid_state"
    assert [e.field for e in event_errors("CommandRejected", command_type="Hack")] == [
        "command_type"
    ]
    with pytest.raises(TypeError):
        _ = rejected.key


def test_command_rejected_names_every_command_type() -> None:
    for name in COMMANDS:
        CommandRejected.model_validate(with_("CommandRejected", command_type=name))


@settings(deadline=None)
@given(
    st.sampled_from(sorted(EVENTS)),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.uuids().map(str),
)
def test_events_round_trip_for_any_time_and_id(name: str, at: datetime, event_id: str) -> None:
    cls = EVENT_TYPES[name]
    event = cls.model_validate(EVENTS[name]).model_copy(
        update={"occurred_at": at.replace(microsecond=at.microsecond // 1000 * 1000)}
    )
    event = cls.model_validate({**event.model_dump(mode="json"), "event_id": event_id})
    assert cls.model_validate_json(event.model_dump_json()) == event
