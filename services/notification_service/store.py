"""notification_service's MongoDB documents.

Collections:
* `notifications`: the inbox. `_id` = notification_id, derived from (source event or
  reminder, recipient), so a redelivered event cannot create a second one; the
  NotificationCreated event sits in the same document's outbox until published.
* `offers`: the local projection of offers.events (parties, title, status, expiry).
* `reminders`: one per (offer, version, lead time), `pending` until due, then `sent` or
  `cancelled`; while pending, in the bucket of the minute it falls due in
  (services.runtime.due). (No "claimed" state: FerretDB's conditional updates are not
  atomic across connections, so the unique `_id` of the reminder's notification decides
  who sends it.)
* `rejections`: refused commands by command_id, each with its CommandRejected in an outbox.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.runtime.clock import utc_now
from services.runtime.due import FIELD as DUE_BUCKET
from services.runtime.due import DueBuckets, due_bucket
from services.runtime.outbox import MongoOutbox, OutboxEntry, outbox_fields

from .domain import OfferInfo

Document = dict[str, Any]

PENDING, SENT, CANCELLED = "pending", "sent", "cancelled"


class Conflict(Exception):
    """Somebody else wrote the document since it was read; read again and decide again."""


@dataclass(frozen=True, slots=True)
class StoredOffer:
    value: OfferInfo
    revision: int


def offer_from_document(document: Document) -> OfferInfo:
    return OfferInfo(
        offer_id=document["_id"],
        client_id=document["client_id"],
        freelancer_id=document["freelancer_id"],
        status=document["status"],
        version=document["version"],
        title=document.get("title"),
        summary=document.get("summary"),
        expires_at=document.get("expires_at"),
    )


def offer_to_document(offer: OfferInfo) -> Document:
    return {
        "client_id": offer.client_id,
        "freelancer_id": offer.freelancer_id,
        "status": offer.status,
        "version": offer.version,
        "title": offer.title,
        "summary": offer.summary,
        "expires_at": offer.expires_at,
    }


class NotificationStore(Protocol):
    async def add_notification(
        self, fields: Document, entry: OutboxEntry, now: datetime
    ) -> Document | None: ...

    async def notification(self, notification_id: str) -> Document | None: ...

    async def get_offer(self, offer_id: str) -> StoredOffer | None: ...


class MongoNotificationStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.notifications = database["notifications"]
        self.offers = database["offers"]
        self.reminders = database["reminders"]
        self.parked = database["parked_messages"]
        self.reminders_due = DueBuckets(self.reminders, database["sweeps"], "reminders")
        self.notifications_outbox = MongoOutbox(self.notifications)
        self.outboxes = (self.notifications_outbox,)

    async def ensure_indexes(self) -> None:
        for outbox in self.outboxes:
            await outbox.ensure_indexes()
        # The inbox, all and unread only, newest first (runtime.pages order: created_at, _id).
        await self.notifications.create_index(
            [("recipient_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
        )
        await self.notifications.create_index(
            [
                ("recipient_id", ASCENDING),
                ("read", ASCENDING),
                ("created_at", DESCENDING),
                ("_id", DESCENDING),
            ]
        )
        await self.parked.create_index("offer_id")
        # The reminder sweep, and cancelling an offer's reminders.
        await self.reminders_due.ensure_ready(utc_now())
        await self.reminders.create_index("offer_id")

    # --- notifications --------------------------------------------------------------------

    async def add_notification(
        self, fields: Document, entry: OutboxEntry, now: datetime
    ) -> Document | None:
        """Stores a notification with its event; None when it exists already."""
        document = {**fields, "read": False, "revision": 1, **outbox_fields([entry], now)}
        try:
            await self.notifications.insert_one(document)
        except DuplicateKeyError:
            return None
        return document

    async def notification(self, notification_id: str) -> Document | None:
        return await self.notifications.find_one({"_id": notification_id})

    async def mark_read(self, recipient_id: str, ids: Sequence[str], now: datetime) -> int:
        """Marks the recipient's own notifications among `ids` read; returns how many
        changed. Leaves `revision` alone: it guards the outbox, which this does not touch.
        Each id is its own `_id` lookup (an `$in` is never pushed down), one update at a
        time: FerretDB 1.24 holds a PostgreSQL connection per statement of one update
        command, and a bulk of 100 exhausted its pool and stalled (measured)."""
        changed = 0
        for notification_id in dict.fromkeys(ids):
            result = await self.notifications.update_one(
                {"_id": notification_id, "recipient_id": recipient_id, "read": False},
                {"$set": {"read": True, "read_at": now}},
            )
            changed += result.modified_count
        return changed

    # --- messages about offers not known yet ------------------------------------------------

    async def park(self, offer_id: str, event_id: str, payload: str, now: datetime) -> None:
        """Keeps a message event until its offer arrives (once, however often delivered)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.parked.insert_one(
                {"_id": event_id, "offer_id": offer_id, "payload": payload, "parked_at": now}
            )

    async def parked_for(self, offer_id: str) -> list[Document]:
        return [document async for document in self.parked.find({"offer_id": offer_id})]

    async def unpark(self, event_id: str) -> None:
        await self.parked.delete_one({"_id": event_id})

    # --- the offers projection --------------------------------------------------------------

    async def get_offer(self, offer_id: str) -> StoredOffer | None:
        document = await self.offers.find_one({"_id": offer_id})
        if document is None:
            return None
        return StoredOffer(offer_from_document(document), document["revision"])

    async def put_offer(self, offer: OfferInfo, expected: StoredOffer | None) -> None:
        """Creates or updates the projection; Conflict if it changed since it was read."""
        if expected is None:
            try:
                await self.offers.insert_one(
                    {"_id": offer.offer_id, **offer_to_document(offer), "revision": 1}
                )
            except DuplicateKeyError:
                raise Conflict(offer.offer_id) from None
            return
        result = await self.offers.update_one(
            {"_id": offer.offer_id, "revision": expected.revision},
            {"$set": {**offer_to_document(offer), "revision": expected.revision + 1}},
        )
        if result.matched_count == 0:
            raise Conflict(offer.offer_id)

    # --- reminders --------------------------------------------------------------------------

    async def add_reminder(self, reminder_id: str, fields: Document) -> None:
        document = {
            "_id": reminder_id,
            **fields,
            "state": PENDING,
            DUE_BUCKET: due_bucket(fields["due_at"]),
        }
        with suppress(DuplicateKeyError):  # scheduled already (a redelivered event)
            await self.reminders.insert_one(document)

    async def cancel_reminders(
        self, offer_id: str, now: datetime, *, before_version: int | None = None
    ) -> int:
        """Cancels the offer's pending reminders (of versions before `before_version`)."""
        cancelled = 0
        async for reminder in self.reminders.find({"offer_id": offer_id, "state": PENDING}):
            if before_version is None or reminder["version"] < before_version:
                await self.close_reminder(reminder["_id"], CANCELLED, now)
                cancelled += 1
        return cancelled

    async def close_reminder(self, reminder_id: str, state: str, now: datetime) -> None:
        await self.reminders.update_one(
            {"_id": reminder_id, "state": PENDING},
            {"$set": {"state": state, "closed_at": now}, "$unset": {DUE_BUCKET: ""}},
        )
