"""messaging_service's use cases, each a rule that only decides (services.runtime.decide):
keep each thread's projection of its offer, and turn PostMessage / ProposeTerms into
MessagePosted / TermsProposed (or one CommandRejected).

A thread, its messages and its commands share the offer's partition, so each rule here
decides for the thread's one writer. Every path is safe to repeat: a command whose
message_id is in the thread finds its message stored (its insert, or the row's `once_id`
before a refusal), and a redelivered offer event teaches the thread nothing new. A message
is numbered by its command's place, so the thread is not written to count it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from contracts import MessagePosted, PostMessage, ProposeTerms, RejectionCode, TermsProposed
from services.rules import OfferEvent, Rejection
from services.runtime.decide import Changed, Outcome, Placed, Unchanged, Waits, WriteOnce
from services.runtime.outbox import MessageLike, OutboxEntry
from services.runtime.refusals import Refusals
from services.runtime.uow import UnitOfWork

from . import domain
from .store import ThreadStore, message_document, message_document_id


def stream_entry(event: MessageLike, seq: int | None) -> OutboxEntry:
    """A thread's event with its number in the thread's stream (services.runtime.streams)."""
    return OutboxEntry.of(event, stream_id=None if seq is None else str(seq))


class MessagingHandlers:
    def __init__(
        self, store: ThreadStore, uow: UnitOfWork, refusals: Refusals, *, max_contract_days: int
    ) -> None:
        self.store = store
        self.uow = uow
        self.refusals = refusals
        self.max_contract_days = max_contract_days

    def on_offer_event(
        self, thread: domain.Thread | None, event: OfferEvent, now: datetime
    ) -> Outcome[domain.Thread]:
        """What the thread keeps of its offer (services.runtime.decide does the I/O)."""
        outcome = domain.project(thread, event, now)
        if not outcome.changed:
            return Unchanged(f"v{event.version} taught the thread nothing new")
        closed = outcome.closed
        return Changed(
            outcome.thread,
            [] if closed is None else [stream_entry(closed, outcome.thread.closed_seq)],
            said=f"thread {event.offer_id}: {event.type} v{event.version} -> "
            f"{outcome.thread.status.value}{' (closed)' if closed else ''}",
        )

    def post_message(
        self, thread: domain.Thread | None, placed: Placed[PostMessage], now: datetime
    ) -> Outcome[domain.Thread]:
        command = placed.message
        return _spoken(thread, placed, lambda open_: domain.post_message(open_, command, now))

    def propose_terms(
        self, thread: domain.Thread | None, placed: Placed[ProposeTerms], now: datetime
    ) -> Outcome[domain.Thread]:
        command = placed.message
        return _spoken(
            thread,
            placed,
            lambda open_: domain.propose_terms(
                open_, command, now, today=now.date(), max_contract_days=self.max_contract_days
            ),
        )


def message_of(command: PostMessage | ProposeTerms) -> str:
    """The id of the message document a command makes: derived from the producer's own
    message_id, so a new command repeating it finds the message posted."""
    return message_document_id(command.offer_id, command.message_id)


def _spoken(
    thread: domain.Thread | None,
    placed: Placed[PostMessage] | Placed[ProposeTerms],
    rule: Callable[[domain.Thread], Rejection | MessagePosted | TermsProposed],
) -> Outcome[domain.Thread]:
    """A message or proposal in the offer's thread, written once, numbered in the thread's
    stream by its command's place (`Placed.number`): the thread is read, not written,
    unless its counter of earlier messages is still ahead."""
    command = placed.message
    if thread is None:
        return Waits(RejectionCode.UNKNOWN_OFFER, f"there is no offer {command.offer_id!r}")
    said = rule(thread)
    if isinstance(said, Rejection):
        return said
    seq = placed.number(thread.last_seq)
    once = [WriteOnce(message_document(command, said, seq), [stream_entry(said, seq)])]
    text = (
        f"thread {command.offer_id}: {said.type} {command.message_id} from "
        f"{command.actor_id} (#{seq})"
    )
    if seq > placed.place:  # numbered by the counter: it moves on
        return Changed(replace(thread, last_seq=seq), once=once, said=text)
    return Unchanged(text, once=once)
