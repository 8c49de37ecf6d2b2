"""Events, rejections and resources as readable lines; answers matched by command id."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from contracts import (
    CommandRejected,
    FieldError,
    OfferExtended,
    RejectionCode,
    TermsChanges,
    TermsDifference,
    TermsProposed,
    WithdrawOffer,
    topics,
)
from contracts.terms import OFFER_TERMS_ADAPTER
from offers_cli import render
from offers_cli.bus import Record, answers, caused_by
from tests.kit import fixed_terms, hourly_terms

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def extended() -> OfferExtended:
    return OfferExtended(
        event_id="e-1",
        occurred_at=NOW,
        causation_id="cmd-1",
        offer_id="offer-1",
        version=1,
        client_id="client-1",
        freelancer_id="free-1",
        job_id="job-1",
        proposal_id="prop-1",
        terms=OFFER_TERMS_ADAPTER.validate_python(
            hourly_terms(
                start_date="2026-12-01", end_date="2027-03-01", talent_cloud_id="tc-design"
            )
        ),
        expires_at=datetime(2026, 12, 26, 12, 0, tzinfo=UTC),
    )


def rejected(**fields: Any) -> CommandRejected:
    values: dict[str, Any] = {
        "event_id": "e-2",
        "occurred_at": NOW,
        "causation_id": "cmd-2",
        "command_id": "cmd-2",
        "command_type": "ExtendOffer",
        "actor_id": "client-1",
        "code": RejectionCode.INVALID_COMMAND,
        "message": "ExtendOffer is invalid: 2 problems",
        "errors": [
            FieldError(field="terms.start_date", message="must not be before today"),
            FieldError(field="terms.milestones.1.amount", message="must be greater than 0"),
        ],
        **fields,
    }
    return CommandRejected(**values)


def record(topic: str, value: dict[str, Any], key: str = "offer-1") -> Record:
    raw = json.dumps(value).encode()
    return Record(topic, key, value, raw, {"type": value.get("type", "")}, 1_700_000_000_000)


def test_an_event_answer_is_one_line_with_what_matters() -> None:
    assert render.outcome(extended()) == [
        "✔ OfferExtended offer offer-1 version 1: client-1 → free-1, hourly 45.00 USD/h, "
        "≤ 30 h/week, 2026-12-01 → 2027-03-01, Talent Cloud tc-design; expires 2026-12-26"
    ]


def test_a_rejection_lists_every_field_error_with_its_option() -> None:
    assert render.outcome(rejected()) == [
        "✘ rejected (invalid_command): ExtendOffer is invalid: 2 problems",
        "    - terms.start_date (--start): must not be before today",
        "    - terms.milestones.1.amount (--milestone): must be greater than 0",
    ]
    state = rejected(code=RejectionCode.INVALID_STATE, message="offer is accepted", errors=[])
    unsaid = state.model_copy(update={"status": "expired", "message": "too late"})
    assert render.outcome(unsaid) == ["✘ rejected (invalid_state): too late (status expired)"]
    assert render.outcome(state.model_copy(update={"status": "accepted"})) == [
        "✘ rejected (invalid_state): offer is accepted"
    ]


def test_a_terms_proposal_shows_the_differences() -> None:
    proposed = TermsProposed(
        event_id="e-3",
        occurred_at=NOW,
        causation_id="cmd-3",
        offer_id="offer-1",
        message_id="m-1",
        sender_id="free-1",
        changes=TermsChanges.model_validate({"hourly_rate": "55"}),
        differences=[TermsDifference(field="hourly_rate", current="45.00", proposed="55.00")],
        text="55?",
        sent_at=NOW,
    )
    assert render.describe(proposed) == (
        "offer offer-1: free-1 proposes hourly_rate 45.00 → 55.00 (message m-1) — “55?”"
    )


def test_watch_prints_one_line_per_record_events_and_commands_alike() -> None:
    event = render.watch_line(record(topics.OFFERS_EVENTS, extended().model_dump(mode="json")))
    assert "offers.events" in event and "OfferExtended" in event and "offer-1" in event
    assert "\n" not in event
    command = WithdrawOffer(command_id="cmd-9", actor_id="client-1", offer_id="o-1", reason="x")
    line = render.watch_line(record(topics.OFFERS_COMMANDS, command.model_dump(mode="json")))
    assert "WithdrawOffer" in line and "by client-1: offer_id=o-1, reason=x" in line
    rejection = render.watch_line(
        record(topics.COMMANDS_REJECTED, rejected().model_dump(mode="json"))
    )
    assert "invalid_command" in rejection and "terms.start_date: must not be" in rejection
    assert "\n" not in rejection


def test_answers_are_matched_by_command_id_only() -> None:
    command = WithdrawOffer(command_id="cmd-2", actor_id="client-1", offer_id="offer-1")
    match = answers(command)
    ours = rejected().model_dump(mode="json")
    assert match(record(topics.COMMANDS_REJECTED, ours))
    assert not match(record(topics.COMMANDS_REJECTED, {**ours, "command_id": "cmd-other"}))
    event = extended().model_dump(mode="json")
    assert match(record(topics.OFFERS_EVENTS, {**event, "causation_id": "cmd-2"}))
    assert not match(record(topics.OFFERS_EVENTS, event))  # caused by cmd-1
    follows = caused_by("e-1", "ContractActivated")
    assert follows(
        record(topics.CONTRACTS_EVENTS, {"type": "ContractActivated", "causation_id": "e-1"})
    )
    assert not follows(
        record(topics.CONTRACTS_EVENTS, {"type": "TimeLogged", "causation_id": "e-1"})
    )


def test_an_offer_from_the_read_api() -> None:
    terms = fixed_terms(start_date="2026-12-01", end_date="2026-12-31", po_number="PO-1")
    offer = {
        "offer_id": "offer-1",
        "status": "pending",
        "version": 2,
        "client_id": "client-1",
        "freelancer_id": "free-1",
        "job_id": "job-1",
        "proposal_id": "prop-1",
        "terms": terms,
        "expires_at": "2026-12-26T12:00:00Z",
        "versions": [
            {"version": 1, "terms": terms, "sent_at": "2026-11-25T12:00:00Z"},
            {
                "version": 2,
                "terms": terms,
                "sent_at": "2026-11-26T12:00:00Z",
                "in_response_to": "m-1",
            },
        ],
    }
    lines = render.offer_view(offer)
    assert lines[0] == "offer offer-1: pending, version 2, expires 2026-12-26 12:00 UTC"
    assert "  price:        fixed 800.00 USD in 2 milestones" in lines
    assert "    milestone:  Sketches: 500.00" in lines
    assert "  PO number:    PO-1" in lines
    assert lines[-1].startswith("  v2 sent 2026-11-26 12:00 UTC: fixed 800.00 USD")
    assert lines[-1].endswith("answering proposal m-1")


def test_an_inbox_marks_the_unread() -> None:
    items = [
        {"notification_id": "n-1", "kind": "offer_received", "title": "Offer received",
         "body": "b", "read": False, "created_at": "2026-11-26T12:00:00Z"},
        {"notification_id": "n-2", "kind": "contract_active", "title": "Contract active",
         "body": "", "read": True, "created_at": "2026-11-26T12:01:00Z"},
    ]  # fmt: skip
    lines = render.inbox_view("free-1", items)
    assert lines[0] == "free-1: 2 notification(s), 1 unread"
    assert lines[1].startswith(" • 2026-11-26 12:00 UTC  [offer_received]")
    assert lines[3].startswith("   2026-11-26 12:01 UTC  [contract_active]")
