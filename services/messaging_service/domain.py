"""messaging_service's rules, pure: the thread's projection of an offer (built from
offers.events, tolerant of redelivery and of events out of order) and who may say what
in it. No I/O here: handlers.py reads, asks these functions, and writes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Final, Literal

from contracts import (
    FieldError,
    FixedTerms,
    HourlyTerms,
    MessagePosted,
    OfferAccepted,
    OfferChanged,
    OfferExtended,
    PostMessage,
    ProposeTerms,
    RejectionCode,
    TermsProposed,
    ThreadClosed,
    format_utc,
    proposed_terms,
    terms_differences,
)
from services.rules import OfferEvent, OfferStatus, Rejection, derived_id, status_after

Terms = HourlyTerms | FixedTerms
CloseReason = Literal["accepted", "declined", "withdrawn", "expired"]


@dataclass(frozen=True, slots=True)
class Thread:
    """An offer's negotiation thread: what this service knows of the offer."""

    offer_id: str
    client_id: str
    freelancer_id: str
    status: OfferStatus
    version: int
    terms: Terms | None
    """The current terms; None only for a thread created closed by a terms-less event."""
    expires_at: datetime | None
    close_reason: CloseReason | None = None
    closed_at: datetime | None = None
    last_seq: int = 0
    """The counter that numbered the thread's messages before they were numbered by their
    command's place (`Placed.number`); moved on only while it is ahead."""
    answers: tuple[tuple[str, int], ...] = ()
    """(proposal message_id, first offer version that answered it), stored only here."""
    closed_seq: int | None = None
    """The ThreadClosed's number in the thread's stream (after its last message: STREAM_END,
    or, closed before that, the counter's next)."""
    closed_by: str | None = None
    """The id of the offer event that closed the thread (the ThreadClosed's causation)."""

    @property
    def closed(self) -> bool:
        return self.status.terminal

    def answered_by(self, message_id: str) -> int | None:
        return next((version for answered, version in self.answers if answered == message_id), None)


def with_answer(thread: Thread, message_id: str, version: int) -> Thread:
    """Links a proposal to the first offer version that answered it."""
    known = thread.answered_by(message_id)
    if known is not None and known <= version:
        return thread
    others = tuple(a for a in thread.answers if a[0] != message_id)
    return replace(thread, answers=(*others, (message_id, version)))


@dataclass(frozen=True, slots=True)
class Projection:
    """The outcome of one offer event for the thread."""

    thread: Thread
    changed: bool
    """False when the event taught nothing new (a redelivery, or an older version)."""
    closed: ThreadClosed | None = None
    """The one ThreadClosed, when this event closed the thread."""
    answered: tuple[str, int] | None = None
    """(TermsProposed message_id, offer version) when an OfferChanged answered a proposal."""


# The ThreadClosed's number: the end of the thread's stream. Its messages are numbered by
# their commands' places in negotiations.commands, while it closes on an offer event, whose
# place in offers.events says nothing of theirs; nothing is said in a thread once it is
# closed, so its closing takes the last number there is (the largest integer a JavaScript
# number holds exactly: a page's EventSource hands the id back as it got it).
STREAM_END: Final = 2**53 - 1


def closing(thread: Thread, cause: OfferEvent) -> Thread:
    """A thread that has just closed: its ThreadClosed ends the thread's stream."""
    return replace(thread, closed_seq=STREAM_END, closed_by=cause.event_id)


def thread_closed_event(thread: Thread, now: datetime) -> ThreadClosed:
    assert thread.close_reason is not None and thread.closed_by is not None
    return ThreadClosed(
        # One per thread, ever: a redelivered closing event yields the same id.
        event_id=derived_id("thread-closed", thread.offer_id),
        occurred_at=now,
        causation_id=thread.closed_by,
        offer_id=thread.offer_id,
        reason=thread.close_reason,
    )


def _from_event(event: OfferEvent, now: datetime) -> Thread:
    terms: Terms | None = None
    expires_at: datetime | None = None
    if isinstance(event, OfferExtended | OfferChanged):
        terms, expires_at = event.terms, event.expires_at
    elif isinstance(event, OfferAccepted):
        terms = event.terms
    status = status_after(event)
    return Thread(
        offer_id=event.offer_id,
        client_id=event.client_id,
        freelancer_id=event.freelancer_id,
        status=status,
        version=event.version,
        terms=terms,
        expires_at=expires_at,
        close_reason=None if status is OfferStatus.PENDING else status.value,  # type: ignore[arg-type]
        closed_at=None if status is OfferStatus.PENDING else now,
    )


def project(thread: Thread | None, event: OfferEvent, now: datetime) -> Projection:
    """Applies one offer event. An event older than what the thread knows changes nothing
    (except that an answered proposal is still recorded); a closed thread never reopens."""
    answered = (
        (event.in_response_to, event.version)
        if isinstance(event, OfferChanged) and event.in_response_to is not None
        else None
    )
    if thread is None:
        created = _from_event(event, now)
        if answered is not None:
            created = with_answer(created, *answered)
        if not created.closed:
            return Projection(created, True, None, answered)
        created = closing(created, event)
        return Projection(created, True, thread_closed_event(created, now), answered)
    if answered is not None:
        answered_thread = with_answer(thread, *answered)
        if answered_thread != thread:
            outcome = project(answered_thread, event, now)
            return replace(outcome, changed=True)

    if event.version < thread.version:
        return Projection(thread, False, None, answered)

    closes_as = None if status_after(event) is OfferStatus.PENDING else status_after(event)
    if thread.closed:
        # Terminal: nothing reverts it. Only fill in terms a closing event did not carry.
        updated = thread
        if thread.terms is None and isinstance(event, OfferExtended | OfferChanged | OfferAccepted):
            updated = replace(thread, terms=event.terms)
        return Projection(updated, updated != thread, None, answered)

    if closes_as is not None:
        terms = event.terms if isinstance(event, OfferAccepted) else thread.terms
        updated = closing(
            replace(
                thread,
                status=closes_as,
                version=event.version,
                terms=terms,
                close_reason=closes_as.value,  # type: ignore[arg-type]
                closed_at=now,
            ),
            event,
        )
        return Projection(updated, True, thread_closed_event(updated, now), answered)

    assert isinstance(event, OfferExtended | OfferChanged)
    updated = replace(
        thread,
        version=event.version,
        terms=event.terms,
        expires_at=event.expires_at,
        client_id=event.client_id,
        freelancer_id=event.freelancer_id,
    )
    return Projection(updated, updated != thread, None, answered)


# --- commands --------------------------------------------------------------------------------


def may_speak(
    thread: Thread, command: PostMessage | ProposeTerms, now: datetime
) -> Rejection | None:
    """Who may post in the thread, and while the offer is open."""
    if command.actor_id not in (thread.client_id, thread.freelancer_id):
        return Rejection(
            RejectionCode.NOT_AUTHORIZED,
            f"only the offer's client or freelancer may write in the thread of offer "
            f"{thread.offer_id!r}",
        )
    if thread.closed:
        return Rejection(
            RejectionCode.THREAD_CLOSED,
            f"the thread of offer {thread.offer_id!r} is closed: the offer was "
            f"{thread.status.value}",
            status=thread.status.value,
        )
    if thread.expires_at is not None and now >= thread.expires_at:
        # Not swept yet, but it can no longer be accepted: negotiating it is pointless.
        return Rejection(
            RejectionCode.THREAD_CLOSED,
            f"the thread of offer {thread.offer_id!r} is closed: the offer expired at "
            f"{format_utc(thread.expires_at)}",
            status=OfferStatus.EXPIRED.value,
        )
    return None


def message_event_id(offer_id: str, message_id: str) -> str:
    return derived_id("message-event", offer_id, message_id)


def post_message(thread: Thread, command: PostMessage, now: datetime) -> Rejection | MessagePosted:
    refused = may_speak(thread, command, now)
    if refused is not None:
        return refused
    return MessagePosted(
        event_id=message_event_id(thread.offer_id, command.message_id),
        occurred_at=now,
        causation_id=command.command_id,
        offer_id=thread.offer_id,
        message_id=command.message_id,
        sender_id=command.actor_id,
        text=command.text,
        sent_at=now,
    )


def propose_terms(
    thread: Thread,
    command: ProposeTerms,
    now: datetime,
    *,
    today: date,
    max_contract_days: int,
) -> Rejection | TermsProposed:
    refused = may_speak(thread, command, now)
    if refused is not None:
        return refused
    assert thread.terms is not None  # a pending thread always has terms
    proposed, errors = proposed_terms(
        thread.terms, command.changes, today=today, max_contract_days=max_contract_days
    )
    if proposed is None:
        n = len(errors)
        return Rejection(
            RejectionCode.INVALID_COMMAND,
            f"the proposed terms break {n} rule{'s' if n != 1 else ''}",
            tuple(errors),
        )
    differences = terms_differences(thread.terms, proposed)
    if not differences:
        return Rejection(
            RejectionCode.INVALID_COMMAND,
            "the proposed changes are the current terms: nothing to propose",
            (FieldError(field="changes", message="must differ from the current terms"),),
        )
    return TermsProposed(
        event_id=message_event_id(thread.offer_id, command.message_id),
        occurred_at=now,
        causation_id=command.command_id,
        offer_id=thread.offer_id,
        message_id=command.message_id,
        sender_id=command.actor_id,
        changes=command.changes,
        differences=differences,
        text=command.text,
        sent_at=now,
    )
