"""messaging_service's pure rules: the thread's projection of its offer, and who may say
what in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import (
    OFFER_EVENT_ADAPTER,
    HourlyTerms,
    MessagePosted,
    PostMessage,
    ProposeTerms,
    RejectionCode,
    TermsChanges,
    TermsProposed,
)
from services.messaging_service import domain
from services.messaging_service.domain import Thread
from services.rules import OfferEvent, OfferStatus, Rejection
from tests.kit import hourly_terms

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
OFFER = "offer-1"
CLIENT = "client-1"
FREELANCER = "free-1"


def terms(**changes: Any) -> dict[str, Any]:
    start = TODAY + timedelta(days=5)
    return hourly_terms(
        start_date=start.isoformat(), end_date=(start + timedelta(days=90)).isoformat(), **changes
    )


def event(type_: str, version: int = 1, **fields: Any) -> OfferEvent:
    data: dict[str, Any] = {
        "type": type_,
        "event_id": f"{type_}-{version}-{fields.pop('n', 0)}",
        "schema_version": 1,
        "occurred_at": "2026-11-26T12:00:00Z",
        "causation_id": "cmd-1",
        "offer_id": OFFER,
        "version": version,
        "client_id": CLIENT,
        "freelancer_id": FREELANCER,
    }
    if type_ in ("OfferExtended", "OfferChanged"):
        data.update(terms=terms(), expires_at="2026-12-26T12:00:00Z")
    if type_ == "OfferExtended":
        data.update(job_id="job-1", proposal_id="prop-1")
    if type_ == "OfferDeclined":
        data["proposal_id"] = "prop-1"
    if type_ == "OfferAccepted":
        data.update(terms=terms(), accepted_at="2026-11-27T12:00:00Z")
    data.update(fields)
    return OFFER_EVENT_ADAPTER.validate_python(data)


def rate(thread: Thread) -> str | None:
    if not isinstance(thread.terms, HourlyTerms):
        return None
    return str(thread.terms.hourly_rate)


def open_thread() -> Thread:
    return domain.project(None, event("OfferExtended"), NOW).thread


def post(actor: str = CLIENT, text: str = "Can we talk?") -> PostMessage:
    return PostMessage(
        command_id="c-1", actor_id=actor, offer_id=OFFER, message_id="m-1", text=text
    )


def propose(actor: str = FREELANCER, **changes: Any) -> ProposeTerms:
    return ProposeTerms(
        command_id="c-2",
        actor_id=actor,
        offer_id=OFFER,
        message_id="m-2",
        changes=TermsChanges.model_validate(changes),
    )


# --- projection -------------------------------------------------------------------------------


def test_offer_extended_opens_a_pending_thread() -> None:
    outcome = domain.project(None, event("OfferExtended"), NOW)
    assert outcome.changed and outcome.closed is None
    assert outcome.thread.status is OfferStatus.PENDING
    assert (outcome.thread.client_id, outcome.thread.freelancer_id) == (CLIENT, FREELANCER)
    assert outcome.thread.version == 1
    assert rate(outcome.thread) == "45.00"


def test_offer_changed_updates_terms_and_version_and_records_the_answer() -> None:
    changed = event("OfferChanged", 2, terms=terms(hourly_rate="50.00"), in_response_to="m-2")
    outcome = domain.project(open_thread(), changed, NOW)
    assert outcome.changed
    assert outcome.thread.version == 2
    assert rate(outcome.thread) == "50.00"
    assert outcome.answered == ("m-2", 2)


def test_a_redelivered_event_changes_nothing() -> None:
    thread = open_thread()
    outcome = domain.project(thread, event("OfferExtended"), NOW)
    assert not outcome.changed and outcome.thread == thread and outcome.closed is None


def test_an_older_version_arriving_late_is_ignored() -> None:
    newer = domain.project(
        open_thread(), event("OfferChanged", 2, terms=terms(hourly_rate="60.00")), NOW
    ).thread
    outcome = domain.project(newer, event("OfferExtended", 1), NOW)
    assert not outcome.changed and outcome.thread == newer


def test_offer_changed_before_offer_extended_opens_the_thread_at_the_newer_version() -> None:
    thread = domain.project(
        None, event("OfferChanged", 2, terms=terms(hourly_rate="60.00")), NOW
    ).thread
    after = domain.project(thread, event("OfferExtended", 1), NOW)
    assert after.thread.version == 2 and not after.changed
    assert rate(after.thread) == "60.00"


def test_a_late_answer_is_still_recorded() -> None:
    newer = domain.project(open_thread(), event("OfferChanged", 3), NOW).thread
    outcome = domain.project(newer, event("OfferChanged", 2, in_response_to="m-9"), NOW)
    # The answer is the thread's to keep (its one place); the older terms change nothing.
    assert outcome.changed and outcome.thread.answered_by("m-9") == 2
    assert outcome.thread.version == 3 and rate(outcome.thread) == rate(newer)


def test_the_first_version_that_answered_a_proposal_is_kept() -> None:
    thread = domain.project(open_thread(), event("OfferChanged", 3, in_response_to="m-9"), NOW)
    again = domain.project(thread.thread, event("OfferChanged", 2, in_response_to="m-9"), NOW)
    assert again.thread.answered_by("m-9") == 2
    later = domain.project(again.thread, event("OfferChanged", 4, in_response_to="m-9"), NOW)
    assert later.thread.answered_by("m-9") == 2 and later.thread.version == 4


def test_each_closing_event_closes_the_thread_once_with_its_reason() -> None:
    for type_, reason in (
        ("OfferAccepted", "accepted"),
        ("OfferDeclined", "declined"),
        ("OfferWithdrawn", "withdrawn"),
        ("OfferExpired", "expired"),
    ):
        outcome = domain.project(open_thread(), event(type_), NOW)
        assert outcome.thread.closed and outcome.thread.close_reason == reason
        assert outcome.closed is not None and outcome.closed.reason == reason
        assert outcome.closed.causation_id == f"{type_}-1-0"
        again = domain.project(outcome.thread, event(type_, n=1), NOW)
        assert again.closed is None and not again.changed


def test_a_terminal_status_is_never_reverted() -> None:
    closed = domain.project(open_thread(), event("OfferWithdrawn"), NOW).thread
    for late in (
        event("OfferExtended"),
        event("OfferChanged", 2),
        event("OfferAccepted", 1),
        event("OfferExpired", 3),
    ):
        outcome = domain.project(closed, late, NOW)
        assert outcome.thread.status is OfferStatus.WITHDRAWN
        assert outcome.closed is None


def test_a_closing_event_before_offer_extended_creates_the_thread_closed() -> None:
    outcome = domain.project(None, event("OfferDeclined"), NOW)
    assert outcome.thread.closed and outcome.thread.terms is None
    assert outcome.closed is not None and outcome.closed.reason == "declined"
    late = domain.project(outcome.thread, event("OfferExtended"), NOW)
    assert late.thread.closed and late.closed is None
    assert late.thread.terms is not None  # the late event still fills in the terms


def test_thread_closed_has_one_event_id_per_thread() -> None:
    first = domain.project(open_thread(), event("OfferAccepted"), NOW).closed
    second = domain.project(None, event("OfferAccepted", n=7), NOW).closed
    assert first is not None and second is not None
    assert first.event_id == second.event_id


# --- who may post, and when -------------------------------------------------------------------


def test_both_parties_may_post() -> None:
    for actor in (CLIENT, FREELANCER):
        posted = domain.post_message(open_thread(), post(actor), NOW)
        assert isinstance(posted, MessagePosted)
        assert posted.sender_id == actor and posted.causation_id == "c-1"
        assert posted.sent_at == NOW and posted.offer_id == OFFER


def test_a_stranger_may_not_post() -> None:
    refused = domain.post_message(open_thread(), post("somebody-else"), NOW)
    assert isinstance(refused, Rejection) and refused.code is RejectionCode.NOT_AUTHORIZED


def test_a_stranger_learns_nothing_about_a_closed_thread() -> None:
    closed = domain.project(open_thread(), event("OfferAccepted"), NOW).thread
    refused = domain.post_message(closed, post("somebody-else"), NOW)
    assert isinstance(refused, Rejection) and refused.code is RejectionCode.NOT_AUTHORIZED


def test_nobody_posts_in_a_closed_thread() -> None:
    closed = domain.project(open_thread(), event("OfferAccepted"), NOW).thread
    refused = domain.post_message(closed, post(), NOW)
    assert isinstance(refused, Rejection)
    assert refused.code is RejectionCode.THREAD_CLOSED and refused.status == "accepted"
    proposal = domain.propose_terms(
        closed, propose(hourly_rate="50.00"), NOW, today=TODAY, max_contract_days=180
    )
    assert isinstance(proposal, Rejection) and proposal.code is RejectionCode.THREAD_CLOSED


def test_an_offer_past_expiry_is_closed_for_messages_even_before_the_sweep() -> None:
    later = NOW + timedelta(days=31)
    refused = domain.post_message(open_thread(), post(), later)
    assert isinstance(refused, Rejection)
    assert refused.code is RejectionCode.THREAD_CLOSED and refused.status == "expired"


# --- proposals --------------------------------------------------------------------------------


def test_a_proposal_lists_its_differences_from_the_current_terms() -> None:
    proposal = domain.propose_terms(
        open_thread(),
        propose(hourly_rate="55.00", weekly_limit_hours=20),
        NOW,
        today=TODAY,
        max_contract_days=180,
    )
    assert isinstance(proposal, TermsProposed)
    assert [(d.field, d.current, d.proposed) for d in proposal.differences] == [
        ("hourly_rate", "45.00", "55.00"),
        ("weekly_limit_hours", 30, 20),
    ]
    assert proposal.changes.model_dump(mode="json") == {
        "hourly_rate": "55.00",
        "weekly_limit_hours": 20,
    }


def test_removing_an_optional_field_is_a_difference() -> None:
    proposal = domain.propose_terms(
        open_thread(), propose(po_number=None), NOW, today=TODAY, max_contract_days=180
    )
    assert isinstance(proposal, TermsProposed)
    assert [(d.field, d.current, d.proposed) for d in proposal.differences] == [
        ("po_number", "PO-2026-0042", None)
    ]


def test_every_broken_rule_of_a_proposal_is_reported_under_changes() -> None:
    start = TODAY + timedelta(days=5)
    proposal = domain.propose_terms(
        open_thread(),
        propose(
            end_date=(start - timedelta(days=1)).isoformat(),
            total_amount="100.00",
        ),
        NOW,
        today=TODAY,
        max_contract_days=180,
    )
    assert isinstance(proposal, Rejection) and proposal.code is RejectionCode.INVALID_COMMAND
    fields = {error.field for error in proposal.errors}
    assert "changes.end_date" in fields
    assert any(f.startswith("changes.total_amount") for f in fields), fields
    assert all(f.startswith("changes") for f in fields)


def test_a_proposal_beyond_the_compliance_policy_is_refused() -> None:
    start = TODAY + timedelta(days=5)
    proposal = domain.propose_terms(
        open_thread(),
        propose(end_date=(start + timedelta(days=181)).isoformat()),
        NOW,
        today=TODAY,
        max_contract_days=180,
    )
    assert isinstance(proposal, Rejection)
    assert [e.field for e in proposal.errors] == ["changes.end_date"]


def test_a_proposal_that_changes_nothing_is_refused() -> None:
    proposal = domain.propose_terms(
        open_thread(), propose(hourly_rate="45.00"), NOW, today=TODAY, max_contract_days=180
    )
    assert isinstance(proposal, Rejection) and proposal.code is RejectionCode.INVALID_COMMAND


def test_a_stranger_may_not_propose() -> None:
    proposal = domain.propose_terms(
        open_thread(),
        propose("somebody-else", hourly_rate="50.00"),
        NOW,
        today=TODAY,
        max_contract_days=180,
    )
    assert isinstance(proposal, Rejection) and proposal.code is RejectionCode.NOT_AUTHORIZED
