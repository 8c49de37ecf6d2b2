"""notification_service's use cases: turn source events into inbox entries (each stored with
its NotificationCreated in one write, then published), keep the offers projection, send
expiry reminders, and mark notifications read.

Every path is safe to repeat: a notification's id derives from (source event or reminder,
recipient), so a redelivered event finds it stored and only republishes what is unpublished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from contracts import (
    NEGOTIATION_EVENT_ADAPTER,
    MarkNotificationsRead,
    MessagePosted,
    NotificationCreated,
    OfferAccepted,
    OfferChanged,
    OfferDeclined,
    OfferExpired,
    OfferExtended,
    OfferWithdrawn,
    RejectionCode,
    TermsProposed,
    topics,
)
from services.runtime.outbox import OutboxEntry, Publish
from services.runtime.refusals import Refusals, Rejection
from services.runtime.wire import derived_id

from . import domain
from .domain import OfferEvent, OfferInfo, Planned, SourceEvent
from .store import CANCELLED, PENDING, SENT, Conflict, Document, MongoNotificationStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_CONFLICT_RETRIES = 10
OFFER_POLL_SECONDS = 0.2
OFFER_EVENTS = (
    OfferExtended,
    OfferChanged,
    OfferWithdrawn,
    OfferDeclined,
    OfferExpired,
    OfferAccepted,
)


def notification_id_for(source_id: str, recipient_id: str) -> str:
    return derived_id("notification", source_id, recipient_id)


def reminder_id_for(offer_id: str, version: int, lead_seconds: int) -> str:
    return derived_id("reminder", offer_id, str(version), str(lead_seconds))


class NotificationHandlers:
    def __init__(
        self,
        store: MongoNotificationStore,
        publish: Publish,
        *,
        clock: Clock,
        reminder_leads_seconds: Sequence[int],
        unknown_offer_wait: float,
        refusals: Refusals,
    ) -> None:
        self.refusals = refusals
        self.store = store
        self.publish = publish
        self.clock = clock
        self.reminder_leads_seconds = tuple(reminder_leads_seconds)
        self.unknown_offer_wait = unknown_offer_wait

    # --- source events ----------------------------------------------------------------------

    async def on_event(self, event: SourceEvent) -> None:
        offer: OfferInfo | None = None
        previous: OfferInfo | None = None
        if isinstance(event, OFFER_EVENTS):
            previous, offer = await self._project(event)
            await self._schedule_reminders(event, offer)
            await self._notify(event, offer, previous)
            await self._unpark(event.offer_id, offer)
        elif isinstance(event, MessagePosted | TermsProposed):
            offer = await self._wait_for_offer(event.offer_id)
            if offer is None:
                await self._park(event)
                return
            await self._notify(event, offer, None)
        else:
            await self._notify(event, None, None)

    async def _notify(
        self, event: SourceEvent, offer: OfferInfo | None, previous: OfferInfo | None
    ) -> None:
        for plan in domain.notifications_for(event, offer, previous):
            await self.notify(plan, source_id=event.event_id)

    async def _park(self, event: MessagePosted | TermsProposed) -> None:
        """A message whose offer is still unknown after the bounded wait is kept, not lost,
        and notified when the offer's events arrive; the partition moves on meanwhile."""
        await self.store.park(event.offer_id, event.event_id, event.model_dump_json(), self.clock())
        log.warning(
            "%s %s names offer %s, still unknown after %.1fs; kept until the offer arrives",
            event.type,
            event.event_id,
            event.offer_id,
            self.unknown_offer_wait,
            extra={"event_id": event.event_id, "offer_id": event.offer_id},
        )
        # The offer may have arrived between the wait and the parking.
        stored = await self.store.get_offer(event.offer_id)
        if stored is not None:
            await self._unpark(event.offer_id, stored.value)

    async def _unpark(self, offer_id: str, offer: OfferInfo) -> None:
        for parked in await self.store.parked_for(offer_id):
            message = NEGOTIATION_EVENT_ADAPTER.validate_json(parked["payload"])
            if isinstance(message, MessagePosted | TermsProposed):
                await self._notify(message, offer, None)  # idempotent: ids derive from it
            await self.store.unpark(parked["_id"])

    async def notify(self, plan: Planned, *, source_id: str, flush_existing: bool = True) -> bool:
        """Stores the notification with its event (once per source and recipient) and
        publishes it. Returns whether it was new. When it existed already (a redelivered
        event), publishes what is still unpublished of it, unless `flush_existing` is off
        (a racing instance created it and publishes it itself)."""
        notification_id = notification_id_for(source_id, plan.recipient_id)
        now = self.clock()
        event = NotificationCreated(
            event_id=derived_id("notification-created", notification_id),
            occurred_at=now,
            causation_id=source_id,
            notification_id=notification_id,
            recipient_id=plan.recipient_id,
            kind=plan.kind,
            offer_id=plan.offer_id,
            contract_id=plan.contract_id,
            title=plan.title,
            body=plan.body,
            created_at=now,
            source_event_id=source_id,
        )
        entry = OutboxEntry.of(event, topic=topics.NOTIFICATIONS_EVENTS, key=plan.recipient_id)
        fields = {
            "_id": notification_id,
            "notification_id": notification_id,
            "recipient_id": plan.recipient_id,
            "kind": plan.kind,
            "offer_id": plan.offer_id,
            "contract_id": plan.contract_id,
            "title": plan.title,
            "body": plan.body,
            "created_at": event.created_at,
            "source_event_id": source_id,
        }
        document = await self.store.add_notification(fields, entry, event.created_at)
        created = document is not None
        if document is None:
            log.info("notification %s exists already; not repeated", notification_id)
            if flush_existing:
                document = await self.store.notification(notification_id)
        else:
            log.info(
                "notification %s (%s) for %s",
                notification_id,
                plan.kind,
                plan.recipient_id,
                extra={"recipient_id": plan.recipient_id, "offer_id": plan.offer_id},
            )
        if document is not None:
            await self.store.notifications_outbox.flush(document, self.publish)
        return created

    async def _project(self, event: OfferEvent) -> tuple[OfferInfo | None, OfferInfo]:
        for _ in range(MAX_CONFLICT_RETRIES):
            stored = await self.store.get_offer(event.offer_id)
            previous = None if stored is None else stored.value
            updated = domain.project(previous, event)
            if updated != previous:
                try:
                    await self.store.put_offer(updated, stored)
                except Conflict:
                    continue
            return previous, updated
        raise RuntimeError(f"offer {event.offer_id}: too many conflicting projection writes")

    async def _wait_for_offer(self, offer_id: str) -> OfferInfo | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.unknown_offer_wait
        while True:
            stored = await self.store.get_offer(offer_id)
            if stored is not None:
                return stored.value
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(OFFER_POLL_SECONDS)

    # --- expiry reminders -------------------------------------------------------------------

    async def _schedule_reminders(self, event: OfferEvent, offer: OfferInfo) -> None:
        now = self.clock()
        if offer.status in domain.TERMINAL:
            await self.store.cancel_reminders(event.offer_id, now)
            return
        if not isinstance(event, OfferExtended | OfferChanged):
            return
        if not domain.is_current_pending(offer, event):
            return  # a late event of an older version: its reminders would be stale
        if event.version > 1:  # a change restarts the window: older versions' reminders are void
            await self.store.cancel_reminders(event.offer_id, now, before_version=event.version)
        for plan in domain.reminder_schedule(event.expires_at, self.reminder_leads_seconds, now):
            await self.store.add_reminder(
                reminder_id_for(event.offer_id, event.version, plan.lead_seconds),
                {
                    "offer_id": event.offer_id,
                    "version": event.version,
                    "lead_seconds": plan.lead_seconds,
                    "due_at": plan.due_at,
                    "expires_at": event.expires_at,
                    "freelancer_id": event.freelancer_id,
                    "created_at": now,
                },
            )

    async def send_due_reminders(self) -> int:
        """Sends every due reminder of a still-pending offer, exactly once, also with many
        instances sweeping at the same time.

        The one write that decides who sends a reminder is the insert of its notification,
        whose `_id` derives from the reminder: a unique `_id` is the one thing FerretDB
        enforces atomically (a conditional update there is a read-then-write, so two
        instances can both "win" a find_one_and_update claim). Only the instance whose
        insert succeeded publishes; anything it leaves unpublished, the relay publishes.
        """
        sent = 0

        async def send_if_due(reminder: Document) -> bool:
            nonlocal sent
            if reminder["state"] != PENDING or reminder["due_at"] > self.clock():
                return False
            sent += await self._send_reminder(reminder)
            return True  # sent or cancelled: out of its bucket either way

        await self.store.reminders_due.sweep(self.clock(), send_if_due)
        return sent

    async def _send_reminder(self, reminder: Document) -> bool:
        stored = await self.store.get_offer(reminder["offer_id"])
        now = self.clock()
        offer = None if stored is None else stored.value
        if (
            offer is None
            or offer.status != domain.PENDING
            or offer.version != reminder["version"]
            or offer.expires_at is None
            or offer.expires_at <= now
        ):
            await self.store.close_reminder(reminder["_id"], CANCELLED, now)
            return False
        created = await self.notify(
            domain.expiring_reminder(offer, now), source_id=reminder["_id"], flush_existing=False
        )
        await self.store.close_reminder(reminder["_id"], SENT, now)
        return created

    # --- commands ---------------------------------------------------------------------------

    async def handle_command(self, command: MarkNotificationsRead) -> None:
        if await self.refusals.already_refused(command.command_id):
            return
        if command.actor_id != command.recipient_id:
            await self.refusals.refuse(
                command,
                Rejection(
                    RejectionCode.NOT_AUTHORIZED,
                    f"only {command.recipient_id} can mark their notifications read",
                ),
            )
            return
        changed = await self.store.mark_read(
            command.recipient_id, command.notification_ids, self.clock()
        )
        log.info(
            "%s %s: %d of %d notification(s) of %s newly read",
            command.type,
            command.command_id,
            changed,
            len(command.notification_ids),
            command.recipient_id,
            extra={"command_id": command.command_id, "recipient_id": command.recipient_id},
        )
