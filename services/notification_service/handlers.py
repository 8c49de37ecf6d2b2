"""notification_service's use cases: keep the offers projection with its expiry reminders
(the offer's partition), ask each recipient's inbox for the notifications an event means,
create them (the recipient's partition), and mark them read.

Every path is safe to repeat: the projection remembers the events and asks it has handled,
and a notification's id derives from (source event or reminder, recipient), so a repeated
Notify finds it stored and only publishes what is still unpublished of it. A notification's
number in its recipient's stream is its Notify's place in the internal topic, so the inbox
is not written to count it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Final

from contracts import (
    MarkNotificationsRead,
    MessagePosted,
    NotificationCreated,
    NotificationPreferencesChanged,
    RejectionCode,
    SetNotificationPreferences,
    TermsProposed,
)
from contracts.internal import CloseEmails, Notify, SendReminder
from services.rules import OfferEvent, Rejection, derived_id
from services.runtime.decide import (
    Changed,
    Effect,
    Outcome,
    Placed,
    Sets,
    Unchanged,
    Waits,
    WriteOnce,
)
from services.runtime.outbox import OutboxEntry
from services.runtime.refusals import Refusals
from services.runtime.uow import UnitOfWork

from . import domain
from .domain import EmailPlan, Inbox, OfferInfo, OtherSourceEvent, Planned, Preferences, SourceEvent
from .store import DIGEST, EMAIL_MODE, EMAIL_STATE, NOW, WAITING, NotificationStore


def notification_id_for(source_id: str, recipient_id: str) -> str:
    return derived_id("notification", source_id, recipient_id)


def reminder_id_for(offer_id: str, version: int, lead_seconds: int) -> str:
    return derived_id("reminder", offer_id, str(version), str(lead_seconds))


# What an inbox document keeps of its NotificationCreated; the rest is derived from these.
STORED_FIELDS: Final = (
    "notification_id",
    "recipient_id",
    "kind",
    "offer_id",
    "contract_id",
    "title",
    "body",
    "created_at",
    "source_event_id",
)


def notification_event_id(notification_id: str) -> str:
    return derived_id("notification-created", notification_id)


def email_fields(plan: EmailPlan | None) -> dict[str, object]:
    """What a notification document carries of its email (nothing when it is not emailed)."""
    if plan is None:
        return {}
    return {
        "email_to": plan.to,
        "email_after": plan.send_after,
        "email_digest": plan.digest,
        EMAIL_STATE: WAITING,
        # The sender reads the two apart, so that a backlog of digests still gathering can
        # never keep an email that is due now off its page.
        EMAIL_MODE: DIGEST if plan.digest else NOW,
    }


def notify_command(plan: Planned, *, source_id: str, uow: UnitOfWork) -> OutboxEntry:
    """The recipient's inbox asked for one notification: made here, stored there."""
    notification_id = notification_id_for(source_id, plan.recipient_id)
    now = uow.clock()
    created = NotificationCreated(
        event_id=notification_event_id(notification_id),
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
    return uow.to_self(
        Notify(
            command_id=derived_id("notify", notification_id),
            recipient_id=plan.recipient_id,
            notification=created,
        )
    )


class NotificationHandlers:
    def __init__(
        self,
        store: NotificationStore,
        uow: UnitOfWork,
        refusals: Refusals,
        *,
        reminder_leads_seconds: Sequence[int],
        email_digest_seconds: int = 900,
    ) -> None:
        self.store = store
        self.uow = uow
        self.refusals = refusals
        self.reminder_leads_seconds = tuple(reminder_leads_seconds)
        self.email_digest_seconds = email_digest_seconds

    # --- source events (their own partitions) -----------------------------------------------

    def on_chat_event(
        self, offer: OfferInfo | None, event: MessagePosted | TermsProposed, now: datetime
    ) -> Outcome[OfferInfo]:
        # It names the other party only through the offer: it waits for it if need be.
        if offer is None:
            return Waits(
                RejectionCode.UNKNOWN_OFFER, f"offer {event.offer_id} is not projected yet"
            )
        return Unchanged("asks the other party's inbox", self._asks(event, offer))

    def on_event(self, event: OtherSourceEvent, now: datetime) -> Effect:
        return Unchanged("asks the inboxes", self._asks(event, None))

    def _asks(self, event: SourceEvent, offer: OfferInfo | None) -> list[OutboxEntry]:
        """The notifications an event means, asked of their recipients' inboxes."""
        plans = domain.notifications_for(event, offer, None)
        return [notify_command(plan, source_id=event.event_id, uow=self.uow) for plan in plans]

    def on_offer_event(
        self, previous: OfferInfo | None, event: OfferEvent, now: datetime
    ) -> Outcome[OfferInfo]:
        offer = domain.apply(previous, event, self.reminder_leads_seconds, now)
        plans = domain.notifications_for(event, offer, previous)
        # With the projection and its reminders, in one write: what changed decides what the
        # notifications say, so they are asked for exactly once, from the projection they
        # were made of.
        return Changed(
            offer, [notify_command(p, source_id=event.event_id, uow=self.uow) for p in plans]
        )

    # --- expiry reminders (the offer's partition) -------------------------------------------

    def send_reminder(
        self, offer: OfferInfo | None, command: SendReminder, now: datetime
    ) -> Outcome[OfferInfo]:
        """The sweep found the offer's first reminder due: the one due now is sent (if the
        offer is still open), and the due ones are taken off the projection, in one write."""
        if offer is None:
            return Unchanged("there is no such offer")
        after, plan = domain.reminder_due(offer, now)
        if after == offer:
            return Unchanged("no reminder due: sent meanwhile, or asked twice")
        if plan is None:
            return Changed(after, said=f"offer {offer.offer_id}: no reminder, it is closed")
        # Its id derives from the reminder: an inbox keeps one, however often it is asked.
        reminder_id = reminder_id_for(after.offer_id, after.version, plan.lead_seconds)
        reminder = domain.expiring_reminder(after, now)
        return Changed(
            after,
            [notify_command(reminder, source_id=reminder_id, uow=self.uow)],
            said=f"offer {offer.offer_id}: reminded {offer.freelancer_id} "
            f"{domain.human_duration(plan.lead_seconds)} before it expires",
        )

    # --- the inbox (the recipient's partition) ----------------------------------------------

    def notify(self, inbox: Inbox | None, placed: Placed[Notify], now: datetime) -> Outcome[Inbox]:
        """The notification, written once (its id derives from its source), numbered in the
        recipient's stream by its Notify's place: the inbox is read for its email
        preferences and written only while its counter of earlier notifications is ahead
        (`Placed.number`). A redelivered Notify keeps its number; a repeated one (another
        record) finds the notification stored under the number it was given."""
        created = placed.message.notification
        seq = placed.number(0 if inbox is None else inbox.last_seq)
        email = domain.email_plan(
            None if inbox is None else inbox.preferences,
            created.kind,
            created.created_at,
            self.email_digest_seconds,
        )
        document = {
            "_id": created.notification_id,
            **created.model_dump(include=set(STORED_FIELDS)),
            "read": False,
            "seq": seq,  # its number in the recipient's stream
            # Its email, in the same write: stored, it cannot be lost; sent off this path.
            **email_fields(email),
        }
        once = [WriteOnce(document, [OutboxEntry.of(created, stream_id=str(seq))])]
        said = f"notification {created.notification_id} ({created.kind}) for {created.recipient_id}"
        if inbox is not None and seq > placed.place:  # numbered by the counter: it moves on
            return Changed(replace(inbox, last_seq=seq), once=once, said=said)
        return Unchanged(said, once=once)

    def close_emails(self, command: CloseEmails, now: datetime) -> Effect:
        return Sets(
            command.notification_ids,
            {EMAIL_STATE: command.outcome, "email_closed_at": now},
            {"recipient_id": command.recipient_id, EMAIL_STATE: WAITING},
            said=f"emails of {command.recipient_id} closed as {command.outcome}",
        )

    # --- notifications.commands (the recipient's partition) ----------------------------------

    def set_preferences(
        self, inbox: Inbox | None, command: SetNotificationPreferences, now: datetime
    ) -> Outcome[Inbox]:
        if command.actor_id != command.recipient_id:
            return Rejection(
                RejectionCode.NOT_AUTHORIZED,
                f"only {command.recipient_id} can set their notification preferences "
                f"({command.actor_id} asked)",
            )
        chosen = Preferences(
            recipient_id=command.recipient_id,
            email=command.email,
            email_kinds=tuple(dict.fromkeys(command.email_kinds)),
            digest_kinds=tuple(dict.fromkeys(command.digest_kinds)),
            chosen_at=now,
        )
        changed = NotificationPreferencesChanged(
            event_id=derived_id("preferences-changed", command.recipient_id, command.command_id),
            occurred_at=now,
            causation_id=command.command_id,
            recipient_id=chosen.recipient_id,
            email=chosen.email,
            email_kinds=list(chosen.email_kinds),  # type: ignore[arg-type]
            digest_kinds=list(chosen.digest_kinds),  # type: ignore[arg-type]
            changed_at=now,
        )
        email = "off" if chosen.email is None else f"to {chosen.email}"
        kinds = ", ".join(chosen.email_kinds) or "no kind"
        return Changed(
            replace(inbox or Inbox(command.recipient_id), preferences=chosen),
            [changed],
            said=f"{command.recipient_id}: email {email} for {kinds}",
        )

    def mark_read(self, command: MarkNotificationsRead, now: datetime) -> Effect:
        if command.actor_id != command.recipient_id:
            return Rejection(
                RejectionCode.NOT_AUTHORIZED,
                f"only {command.recipient_id} can mark their notifications read",
            )
        return Sets(
            command.notification_ids,
            {"read": True, "read_at": now},
            {"recipient_id": command.recipient_id, "read": False},
            said=f"{command.type} {command.command_id}: notifications of "
            f"{command.recipient_id} newly read",
        )
