"""messaging_service's use cases: keep each thread's projection of its offer, and turn
PostMessage / ProposeTerms into MessagePosted / TermsProposed (or one CommandRejected).

Every path is safe to repeat: a redelivered command is recognised by its command_id (or
its message_id), a redelivered offer event changes nothing the thread already knows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from contracts import (
    MessagePosted,
    PostMessage,
    ProposeTerms,
    RejectionCode,
    TermsProposed,
    topics,
)
from services.runtime.outbox import OutboxEntry, Publish
from services.runtime.ownership import Ownership
from services.runtime.refusals import Refusals, Rejection

from . import domain
from .domain import OfferEvent
from .store import Conflict, Document, MongoThreadStore, StoredThread, answered_by

log = logging.getLogger(__name__)

NegotiationCommand = PostMessage | ProposeTerms
Clock = Callable[[], datetime]
MAX_CONFLICT_RETRIES = 10
POLL_SECONDS = 0.1


class MessagingHandlers:
    def __init__(
        self,
        store: MongoThreadStore,
        publish: Publish,
        *,
        clock: Clock,
        max_contract_days: int,
        unknown_offer_wait: float,
        refusals: Refusals,
        threads: Ownership,
    ) -> None:
        # A thread is read, changed and written holding `threads.writing(offer_id)`.
        self.threads = threads
        self.refusals = refusals
        self.store = store
        self.publish = publish
        self.clock = clock
        self.max_contract_days = max_contract_days
        self.unknown_offer_wait = unknown_offer_wait

    # --- offers.events: the thread's projection ---------------------------------------------

    async def on_offer_event(self, event: OfferEvent) -> None:
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                async with self.threads.writing(event.offer_id):
                    await self._project(event)
                return
            except Conflict:
                continue  # another write meanwhile: read again, apply again
        raise RuntimeError(
            f"thread {event.offer_id}: {MAX_CONFLICT_RETRIES} conflicting writes in a row "
            f"while applying {event.type} {event.event_id}"
        )

    async def _project(self, event: OfferEvent) -> None:
        stored = await self.store.get_thread(event.offer_id)
        if stored is not None:
            # Publish what an earlier write left behind first, so events stay in order.
            await self.store.threads_outbox.flush(stored.document, self.publish)
        now = self.clock()
        outcome = domain.project(None if stored is None else stored.value, event, now)
        new_answer = outcome.answered is not None and (
            stored is None
            or answered_by(stored.document, outcome.answered[0]) != outcome.answered[1]
        )
        if outcome.changed or new_answer:
            entries = (
                []
                if outcome.closed is None
                else [
                    OutboxEntry.of(
                        outcome.closed, topic=topics.NEGOTIATIONS_EVENTS, key=event.offer_id
                    )
                ]
            )
            document = await self.store.save_thread(
                outcome.thread, stored, entries, outcome.answered if new_answer else None, now
            )
            log.info(
                "thread %s: %s v%d -> %s%s",
                event.offer_id,
                event.type,
                event.version,
                outcome.thread.status.value,
                " (closed)" if outcome.closed else "",
            )
            await self.store.threads_outbox.flush(document, self.publish)
        else:
            log.info(
                "thread %s: %s v%d taught nothing new", event.offer_id, event.type, event.version
            )
        if outcome.answered is not None:
            await self.store.record_answer(event.offer_id, *outcome.answered)

    # --- negotiations.commands --------------------------------------------------------------

    async def handle_command(self, command: NegotiationCommand) -> None:
        if await self._already_handled(command):
            return
        stored = await self._wait_for_thread(command.offer_id)
        if stored is None:
            await self.refusals.refuse(
                command,
                Rejection(
                    RejectionCode.UNKNOWN_OFFER,
                    f"there is no offer {command.offer_id!r} (waited "
                    f"{self.unknown_offer_wait:g}s for its events)",
                ),
            )
            return
        existing = await self.store.message(command.offer_id, command.message_id)
        if existing is not None:
            log.info(
                "%s %s: message %s already in the thread; not repeated",
                command.type,
                command.command_id,
                command.message_id,
            )
            await self.store.messages_outbox.flush(existing, self.publish)
            return
        now = self.clock()
        outcome: Rejection | MessagePosted | TermsProposed
        if isinstance(command, PostMessage):
            outcome = domain.post_message(stored.value, command, now)
        else:
            outcome = domain.propose_terms(
                stored.value,
                command,
                now,
                today=now.date(),
                max_contract_days=self.max_contract_days,
            )
        if isinstance(outcome, Rejection):
            await self.refusals.refuse(command, outcome)
            return
        await self._store_message(stored, command, outcome, now)

    async def _already_handled(self, command: NegotiationCommand) -> bool:
        if await self.refusals.already_refused(command.command_id):
            return True
        handled = await self.store.message_by_command(command.command_id)
        if handled is not None:
            log.info("%s %s already handled; not repeated", command.type, command.command_id)
            await self.store.messages_outbox.flush(handled, self.publish)
            return True
        return False

    async def _wait_for_thread(self, offer_id: str) -> StoredThread | None:
        """Commands may overtake the offer's events (SPEC §4): wait a bounded time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.unknown_offer_wait
        while True:
            stored = await self.store.get_thread(offer_id)
            if stored is not None or loop.time() >= deadline:
                return stored
            await asyncio.sleep(POLL_SECONDS)

    async def _store_message(
        self,
        stored: StoredThread,
        command: NegotiationCommand,
        event: MessagePosted | TermsProposed,
        now: datetime,
    ) -> None:
        seq = await self.store.next_seq(command.offer_id)
        fields: Document = {
            "offer_id": command.offer_id,
            "message_id": command.message_id,
            "command_id": command.command_id,
            "seq": seq,
            "sender_id": command.actor_id,
            "text": command.text,
            "sent_at": now,
        }
        if isinstance(event, TermsProposed):
            fields.update(
                kind="terms_proposal",
                changes=event.changes.model_dump(mode="json"),
                differences=[d.model_dump(mode="json") for d in event.differences],
                # An answer that came in before the proposal was stored (replays, races).
                answered_by_version=answered_by(stored.document, command.message_id),
            )
        else:
            fields["kind"] = "message"
        entry = OutboxEntry.of(event, topic=topics.NEGOTIATIONS_EVENTS, key=command.offer_id)
        document: Any = await self.store.add_message(fields, entry, now)
        if document is None:  # the same message_id, stored meanwhile
            document = await self.store.message(command.offer_id, command.message_id)
        else:
            log.info(
                "thread %s: %s %s from %s",
                command.offer_id,
                event.type,
                command.message_id,
                command.actor_id,
            )
        if document is not None:
            await self.store.messages_outbox.flush(document, self.publish)
