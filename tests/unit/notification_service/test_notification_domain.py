"""notification_service's pure rules: who is told what, the offers projection, reminders."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts import (
    OFFER_EVENT_ADAPTER,
    ContractActivated,
    MessagePosted,
    OfferAccepted,
    OfferChanged,
    OfferDeclined,
    OfferExpired,
    OfferExtended,
    OfferWithdrawn,
    TalentCloudMemberAdded,
    TermsProposed,
    ThreadClosed,
    TimeLogged,
    format_utc,
)
from services.notification_service import domain
from services.notification_service.domain import OfferInfo, ReminderPlan
from services.rules import OfferStatus

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=30)
CLIENT, FREELANCER = "client-1", "free-1"
TITLE = "Checkout redesign"


def terms(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "title": TITLE,
        "description": "Redesign the checkout flow.",
        "contract_type": "hourly",
        "currency": "USD",
        "hourly_rate": "45.00",
        "start_date": "2026-12-01",
        "end_date": "2027-03-31",
    }
    value.update(changes)
    return {k: v for k, v in value.items() if v is not None}


def base(type_: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "event_id": str(uuid.uuid4()),
        "occurred_at": format_utc(NOW),
        "causation_id": str(uuid.uuid4()),
        **fields,
    }


def offer_fields(version: int = 1) -> dict[str, Any]:
    return {
        "offer_id": "offer-1",
        "version": version,
        "client_id": CLIENT,
        "freelancer_id": FREELANCER,
    }


def extended(version: int = 1, expires_at: datetime = EXPIRES, **t: Any) -> OfferExtended:
    return OfferExtended.model_validate(
        base(
            "OfferExtended",
            **offer_fields(version),
            job_id="job-1",
            proposal_id="prop-1",
            terms=terms(**t),
            message="Looking forward to it",
            expires_at=format_utc(expires_at),
        )
    )


def parse(data: dict[str, Any]) -> Any:
    return OFFER_EVENT_ADAPTER.validate_python(data)


def changed(version: int = 2, **t: Any) -> OfferChanged:
    event: OfferChanged = parse(
        base(
            "OfferChanged",
            **offer_fields(version),
            terms=terms(**t),
            expires_at=format_utc(EXPIRES + timedelta(days=1)),
        )
    )
    return event


def withdrawn(version: int = 1) -> OfferWithdrawn:
    event: OfferWithdrawn = parse(base("OfferWithdrawn", **offer_fields(version), reason="Budget"))
    return event


def declined(version: int = 1) -> OfferDeclined:
    event: OfferDeclined = parse(
        base("OfferDeclined", **offer_fields(version), proposal_id="prop-1", reason="Busy")
    )
    return event


def expired(version: int = 1) -> OfferExpired:
    event: OfferExpired = parse(base("OfferExpired", **offer_fields(version)))
    return event


def accepted(version: int = 1) -> OfferAccepted:
    event: OfferAccepted = parse(
        base(
            "OfferAccepted",
            **offer_fields(version),
            terms=terms(),
            accepted_at=format_utc(NOW),
        )
    )
    return event


def info(**changes: Any) -> OfferInfo:
    value = OfferInfo(
        offer_id="offer-1",
        client_id=CLIENT,
        freelancer_id=FREELANCER,
        status=OfferStatus.PENDING,
        version=1,
        title=TITLE,
        summary="$45.00/h hourly, 2026-12-01 to 2027-03-31",
        expires_at=EXPIRES,
    )
    return replace(value, **changes)


# --- the table --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (extended(), [(FREELANCER, "offer_received")]),
        (changed(), [(FREELANCER, "offer_changed")]),
        (withdrawn(), [(FREELANCER, "offer_withdrawn")]),
        (accepted(), [(CLIENT, "offer_accepted")]),
        (declined(), [(CLIENT, "offer_declined")]),
        (expired(), [(CLIENT, "offer_expired"), (FREELANCER, "offer_expired")]),
    ],
    ids=lambda value: getattr(value, "type", ""),
)
def test_offer_events_notify_their_recipients(event: Any, expected: list[Any]) -> None:
    planned = domain.notifications_for(event, info())
    assert [(p.recipient_id, p.kind) for p in planned] == expected
    for p in planned:
        assert TITLE in p.title
        assert p.offer_id == "offer-1"
        other = CLIENT if p.recipient_id == FREELANCER else FREELANCER
        assert other in p.body  # who did it (or with whom)


def test_offer_received_says_who_offered_what_and_by_when() -> None:
    [planned] = domain.notifications_for(extended(weekly_limit_hours=30), None)
    assert planned.title == "Offer received: Checkout redesign"
    assert planned.body.startswith(
        "client-1 offered you $45.00/h hourly (up to 30 h/week), 2026-12-01 to 2027-03-31; "
        "accept by 2026-12-26."
    )
    assert "Looking forward to it" in planned.body


def test_offer_changed_says_what_changed() -> None:
    event = changed(hourly_rate="50.00")
    [planned] = domain.notifications_for(event, info(version=2), previous=info())
    assert "now $50.00/h hourly" in planned.body
    assert "was $45.00/h hourly" in planned.body
    assert "version 2" in planned.body


def test_fixed_price_terms_are_described() -> None:
    event = extended(
        contract_type="fixed",
        hourly_rate=None,
        total_amount="800.00",
        milestones=[
            {"description": "Sketches", "amount": "500.00"},
            {"description": "Final", "amount": "300.00"},
        ],
    )
    [planned] = domain.notifications_for(event, None)
    assert "$800.00 fixed price in 2 milestones" in planned.body


def test_terminal_events_without_terms_take_the_title_from_the_projection() -> None:
    [planned] = domain.notifications_for(withdrawn(), info(title="Logo"))
    assert planned.title == "Offer withdrawn: Logo"
    assert "Budget" in planned.body
    [unknown] = domain.notifications_for(withdrawn(), None)
    assert unknown.title == "Offer withdrawn: offer offer-1"


def test_contract_activated_notifies_both_parties() -> None:
    event = ContractActivated.model_validate(
        base(
            "ContractActivated",
            contract_id="contract-1",
            offer_id="offer-1",
            offer_version=1,
            job_id="job-1",
            client_id=CLIENT,
            freelancer_id=FREELANCER,
            terms=terms(),
            activated_at=format_utc(NOW),
        ),
        strict=False,
    )
    planned = domain.notifications_for(event, None)
    assert [(p.recipient_id, p.kind) for p in planned] == [
        (CLIENT, "contract_active"),
        (FREELANCER, "contract_active"),
    ]
    assert all(p.contract_id == "contract-1" and TITLE in p.title for p in planned)
    assert FREELANCER in planned[0].body and CLIENT in planned[1].body
    assert "log time from 2026-12-01" in planned[1].body


def test_talent_cloud_member_added_notifies_the_freelancer() -> None:
    event = TalentCloudMemberAdded.model_validate(
        base(
            "TalentCloudMemberAdded",
            talent_cloud_id="tc-design",
            freelancer_id=FREELANCER,
            contract_id="contract-1",
        )
    )
    [planned] = domain.notifications_for(event, None)
    assert (planned.recipient_id, planned.kind) == (FREELANCER, "talent_cloud_joined")
    assert "tc-design" in planned.title


def message(sender: str) -> MessagePosted:
    return MessagePosted.model_validate(
        base(
            "MessagePosted",
            offer_id="offer-1",
            message_id="m-1",
            sender_id=sender,
            text="Can we talk about the dates?",
            sent_at=format_utc(NOW),
        )
    )


def proposal(sender: str) -> TermsProposed:
    return TermsProposed.model_validate(
        base(
            "TermsProposed",
            offer_id="offer-1",
            message_id="m-2",
            sender_id=sender,
            changes={"hourly_rate": "50.00"},
            differences=[{"field": "hourly_rate", "current": "45.00", "proposed": "50.00"}],
            text=None,
            sent_at=format_utc(NOW),
        )
    )


@pytest.mark.parametrize(("sender", "recipient"), [(CLIENT, FREELANCER), (FREELANCER, CLIENT)])
def test_messages_and_proposals_go_to_the_other_party(sender: str, recipient: str) -> None:
    [posted] = domain.notifications_for(message(sender), info())
    assert (posted.recipient_id, posted.kind) == (recipient, "new_message")
    assert sender in posted.body and TITLE in posted.title
    assert "Can we talk about the dates?" in posted.body
    [proposed] = domain.notifications_for(proposal(sender), info())
    assert (proposed.recipient_id, proposed.kind) == (recipient, "terms_proposed")
    assert "hourly_rate 45.00 → 50.00" in proposed.body and sender in proposed.body


def test_a_message_from_a_stranger_or_about_an_unknown_offer_notifies_nobody() -> None:
    assert domain.notifications_for(message("stranger"), info()) == []
    assert domain.notifications_for(message(CLIENT), None) == []


def test_time_logged_and_thread_closed_notify_nobody() -> None:
    logged = TimeLogged.model_validate(
        base(
            "TimeLogged",
            contract_id="c-1",
            entry_id="e-1",
            work_date="2026-12-02",
            hours="2.5",
        )
    )
    closed = ThreadClosed.model_validate(base("ThreadClosed", offer_id="offer-1", reason="expired"))
    assert domain.notifications_for(logged, None) == []
    assert domain.notifications_for(closed, info()) == []


def test_long_titles_are_cut_to_the_wire_limit() -> None:
    [planned] = domain.notifications_for(extended(title="x" * 200), None)
    assert len(planned.title) == 200


# --- the projection ---------------------------------------------------------------------------


def test_projection_starts_from_any_event() -> None:
    first = domain.project(None, extended())
    assert (first.status, first.version, first.title, first.expires_at) == (
        "pending",
        1,
        TITLE,
        EXPIRES,
    )
    late_start = domain.project(None, withdrawn())
    assert (late_start.status, late_start.title) == ("withdrawn", None)


def test_a_newer_version_replaces_an_older_one_but_not_the_reverse() -> None:
    v2 = domain.project(domain.project(None, extended()), changed(title="New title"))
    assert (v2.version, v2.title, v2.status) == (2, "New title", "pending")
    assert domain.project(v2, extended()) == v2  # the late v1 changes nothing


def test_a_terminal_status_is_never_reverted() -> None:
    gone = domain.project(domain.project(None, extended()), withdrawn())
    assert gone.status == "withdrawn"
    assert domain.project(gone, changed(version=5)).status == "withdrawn"
    assert domain.project(gone, extended()).status == "withdrawn"
    assert domain.project(gone, accepted()).status == "withdrawn"


def test_a_late_event_fills_in_what_is_still_unknown() -> None:
    early = domain.project(None, declined())
    filled = domain.project(early, extended())
    assert (filled.status, filled.title, filled.expires_at) == ("declined", TITLE, EXPIRES)


def test_redelivery_changes_nothing() -> None:
    event = extended()
    once = domain.project(None, event)
    assert domain.project(once, event) == once


def test_is_current_pending() -> None:
    event = changed()
    assert domain.is_current_pending(domain.project(None, event), event)
    v3 = domain.project(None, changed(version=3))
    assert not domain.is_current_pending(domain.project(v3, event), event)
    assert not domain.is_current_pending(domain.project(None, withdrawn()), event)


# --- reminders --------------------------------------------------------------------------------


def test_one_reminder_per_lead_time_before_expiry() -> None:
    plans = domain.reminder_schedule(EXPIRES, (259_200, 86_400), NOW)
    assert plans == [
        ReminderPlan(259_200, EXPIRES - timedelta(hours=72)),
        ReminderPlan(86_400, EXPIRES - timedelta(hours=24)),
    ]


def test_no_reminders_once_expired() -> None:
    assert domain.reminder_schedule(NOW - timedelta(seconds=1), (60,), NOW) == []
    assert domain.reminder_schedule(NOW, (60,), NOW) == []


def test_of_the_lead_times_already_past_only_the_nearest_is_sent_now() -> None:
    expires = NOW + timedelta(hours=10)
    plans = domain.reminder_schedule(expires, (259_200, 86_400, 3_600), NOW)
    assert plans == [ReminderPlan(86_400, NOW), ReminderPlan(3_600, expires - timedelta(hours=1))]


LEADS = (259_200, 86_400)


def test_a_new_pending_version_schedules_its_reminders_and_a_late_older_event_keeps_them() -> None:
    v1 = domain.apply(None, extended(), LEADS, NOW)
    assert v1.reminders == tuple(domain.reminder_schedule(EXPIRES, LEADS, NOW))
    later = NOW + timedelta(days=1)
    v2 = domain.apply(v1, changed(), LEADS, later)
    assert v2.reminders == tuple(
        domain.reminder_schedule(EXPIRES + timedelta(days=1), LEADS, later)
    )
    assert domain.apply(v2, extended(), LEADS, later).reminders == v2.reminders  # late v1


def test_a_terminal_event_drops_the_reminders_whatever_its_order() -> None:
    v1 = domain.apply(None, extended(), LEADS, NOW)
    for closing in (withdrawn(), declined(), accepted()):
        closed = domain.apply(v1, closing, LEADS, NOW)
        assert closed.reminders == ()
        assert domain.apply(closed, extended(), LEADS, NOW).reminders == ()  # late, after it
    assert domain.apply(None, withdrawn(), LEADS, NOW).reminders == ()


def test_a_due_reminder_is_taken_off_and_sent() -> None:
    v1 = domain.apply(None, extended(), LEADS, NOW)
    assert domain.reminder_due(v1, NOW) == (v1, None)  # nothing due yet
    three_days_before = EXPIRES - timedelta(hours=72)
    left, sent = domain.reminder_due(v1, three_days_before)
    assert sent == v1.reminders[0] and left.reminders == v1.reminders[1:]


def test_of_reminders_due_together_only_the_one_nearest_to_expiry_is_sent() -> None:
    v1 = domain.apply(None, extended(), LEADS, NOW)
    left, sent = domain.reminder_due(v1, EXPIRES - timedelta(hours=1))
    assert sent == v1.reminders[1] and left.reminders == ()


@pytest.mark.parametrize(
    "closed",
    [
        {"status": OfferStatus.WITHDRAWN},
        {"expires_at": NOW},  # expired by the clock, its OfferExpired not here yet
        {"expires_at": None},
    ],
)
def test_a_due_reminder_of_an_offer_no_longer_open_is_dropped_not_sent(
    closed: dict[str, Any],
) -> None:
    due = replace(info(), reminders=(ReminderPlan(86_400, NOW - timedelta(minutes=1)),), **closed)
    left, sent = domain.reminder_due(due, NOW)
    assert sent is None and left.reminders == ()


def test_expiring_reminder_says_when() -> None:
    planned = domain.expiring_reminder(info(), EXPIRES - timedelta(hours=24))
    assert (planned.recipient_id, planned.kind) == (FREELANCER, "offer_expiring")
    assert planned.title == "Offer expiring: Checkout redesign"
    assert "expires in 1 day, at 2026-12-26T12:00:00Z" in planned.body
    assert CLIENT in planned.body


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1 second"),
        (59, "59 seconds"),
        (3_600, "1 hour"),
        (259_200, "3 days"),
        (90, "90 seconds"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert domain.human_duration(seconds) == text
