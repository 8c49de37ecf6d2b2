"""messaging_service's use cases: keep each thread's projection of its offer (a rule that
only decides, services.runtime.decide), and turn PostMessage / ProposeTerms into
MessagePosted / TermsProposed (or one CommandRejected).

A thread, its messages and its commands share the offer's partition, so each handler here
is the thread's one writer. Every path is safe to repeat: a redelivered command finds its
message stored, a redelivered offer event teaches the thread nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from contracts import MessagePosted, PostMessage, ProposeTerms, RejectionCode, TermsProposed
from services.rules import OfferEvent, Rejection
from services.runtime.decide import Changed, Outcome, Unchanged
from services.runtime.outbox import MessageLike, OutboxEntry
from services.runtime.refusals import Refusals
from services.runtime.uow import UnitOfWork

from . import domain
from .store import ThreadStore, message_document

log = logging.getLogger(__name__)

# What a party says in a thread, each decided by its own rule (services.messaging_service.domain).
S = TypeVar("S", bound=PostMessage | ProposeTerms)


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

    async def post_message(self, command: PostMessage) -> None:
        await self._speak(command, domain.post_message)

    async def propose_terms(self, command: ProposeTerms) -> None:
        await self._speak(
            command,
            lambda thread, proposal, now: domain.propose_terms(
                thread, proposal, now, today=now.date(), max_contract_days=self.max_contract_days
            ),
        )

    async def _speak(
        self,
        command: S,
        rule: Callable[[domain.Thread, S, datetime], Rejection | MessagePosted | TermsProposed],
    ) -> None:
        """A message or proposal in the offer's thread, once, numbered in its stream."""
        stored = await self.uow.require(
            self.store.threads,
            command.offer_id,
            code=RejectionCode.UNKNOWN_OFFER,
            message=f"there is no offer {command.offer_id!r}",
        )
        existing = await self.store.message(command.offer_id, command.message_id)
        if existing is not None:
            log.info(
                "%s %s: message %s already in the thread; not repeated",
                command.type,
                command.command_id,
                command.message_id,
            )
            await self.uow.flush(self.store.messages, existing)
            return
        now = self.uow.clock()
        thread = stored.value
        outcome = rule(thread, command, now)
        if isinstance(outcome, Rejection):
            await self.refusals.refuse(command, outcome)
            return
        # The number first: a crash between the two writes leaves a gap, never a repeat.
        numbered = replace(thread, last_seq=thread.last_seq + 1)
        await self.uow.commit(self.store.threads, numbered, expected=stored)
        await self.uow.insert_once(
            self.store.messages,
            message_document(command, outcome, numbered.last_seq),
            [stream_entry(outcome, numbered.last_seq)],
        )
        log.info(
            "thread %s: %s %s from %s",
            command.offer_id,
            outcome.type,
            command.message_id,
            command.actor_id,
        )
