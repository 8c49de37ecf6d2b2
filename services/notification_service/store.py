"""notification_service's documents.

* `offers`: the local projection of offers.events (parties, title, status, expiry) with
  the expiry reminders its pending version still has to send (`reminders`, earliest first);
  while it has any, it sits in the bucket of the minute the first falls due in
  (services.runtime.due), where the reminder sweep finds it. Written only by the handler of
  the offer's partition, which schedules, sends and drops the reminders in the same write
  as the projection they belong to.
* `notifications`: the inbox. `_id` = notification_id, derived from (source event or
  reminder, recipient), so a redelivered event cannot create a second one; the
  NotificationCreated event sits in the same document's outbox until published. Written
  only by the handler of the recipient's partition (contracts.internal.Notify), which also
  numbers them (`seq`, from the recipient's inbox) for the recipient's stream.
  A notification to be emailed carries its email in the same document, in the same write:
  `email_to`, `email_after`, `email_digest`, `email_mode` (now or digest) and `email_state:
  waiting`, until the inbox's
  writer closes it (`sent` or `failed`) on the sender's word (contracts.internal.CloseEmails).
* `inboxes`: one per recipient (_id = recipient_id): the number of its last notification
  (`last_seq`) and the email preferences chosen for it (`email`, `email_kinds`,
  `digest_kinds`, `chosen_at`; none while `chosen_at` is absent), written by the handler of
  the recipient's partition, with a NotificationPreferencesChanged in its outbox. One
  document, so that a notification reads one.
* `email_sends`: the sender's record of each notification's email (_id = notification_id),
  inserted once after the SMTP server's answer; an insert of a unique `_id` is atomic, so
  the sender needs no writer of the inbox to know what it has sent (services.
  notification_service.email).

Before, each reminder was a document of its own in `reminders`; `adopt_legacy_reminders`
moves the pending ones into their projections once, at start-up. Before, the preferences
were documents of their own in `preferences`, beside a bare counter in `inboxes`;
`adopt_legacy_preferences` moves them into the inboxes once, at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase

from services.rules import OfferStatus
from services.runtime.documents import Document, Documents, MemoryDocuments
from services.runtime.due import FIELD as DUE_BUCKET
from services.runtime.due import due_bucket
from services.runtime.outbox import ensure_outbox_indexes
from services.runtime.uow import Repository

from .domain import Inbox, OfferInfo, Preferences, ReminderPlan

log = logging.getLogger(__name__)

# A pending offer (the projection's status), and a pending reminder of the former collection.
PENDING: Final = "pending"
# A notification's email: waiting until the sender's outcome is recorded, then sent or failed.
WAITING: Final = "waiting"
EMAIL_STATE: Final = "email_state"
# Whether a waiting email goes on its own (now) or in a digest, once its window is over.
EMAIL_MODE: Final = "email_mode"
NOW: Final = "now"
DIGEST: Final = "digest"


def offer_from_document(document: Document) -> OfferInfo:
    return OfferInfo(
        offer_id=document["_id"],
        client_id=document["client_id"],
        freelancer_id=document["freelancer_id"],
        status=OfferStatus(document["status"]),
        version=document["version"],
        title=document.get("title"),
        summary=document.get("summary"),
        expires_at=document.get("expires_at"),
        reminders=tuple(
            ReminderPlan(plan["lead_seconds"], plan["due_at"])
            for plan in document.get("reminders", ())
        ),
    )


def offer_to_document(offer: OfferInfo) -> Document:
    return {
        "client_id": offer.client_id,
        "freelancer_id": offer.freelancer_id,
        "status": str(offer.status),
        "version": offer.version,
        "title": offer.title,
        "summary": offer.summary,
        "expires_at": offer.expires_at,
        "reminders": [
            {"lead_seconds": plan.lead_seconds, "due_at": plan.due_at} for plan in offer.reminders
        ],
        # In the bucket of its first reminder while it has one (null matches no bucket).
        DUE_BUCKET: due_bucket(offer.reminders[0].due_at) if offer.reminders else None,
    }


COLLECTIONS: Final = (
    "offers",
    "notifications",
    "inboxes",
    "email_sends",
)
# Written once and not read by the rules again: not kept between batches (`Batched.kept`).
WRITE_ONCE_COLLECTIONS: Final = ("notifications", "email_sends")


def inbox_from_document(document: Document) -> Inbox:
    chosen = "chosen_at" in document
    return Inbox(
        recipient_id=document["_id"],
        last_seq=document.get("last_seq", 0),
        preferences=Preferences(
            recipient_id=document["_id"],
            email=document.get("email"),
            email_kinds=tuple(document.get("email_kinds", ())),
            digest_kinds=tuple(document.get("digest_kinds", ())),
            chosen_at=document["chosen_at"],
        )
        if chosen
        else None,
    )


def inbox_to_document(inbox: Inbox) -> Document:
    chosen = inbox.preferences
    if chosen is None:
        return {"last_seq": inbox.last_seq}
    return {
        "last_seq": inbox.last_seq,
        "email": chosen.email,
        "email_kinds": list(chosen.email_kinds),
        "digest_kinds": list(chosen.digest_kinds),
        "chosen_at": chosen.chosen_at,
    }


class NotificationStore:
    def __init__(
        self,
        offers: Documents,
        notifications: Documents,
        inboxes: Documents,
        email_sends: Documents,
    ) -> None:
        self.offers = Repository(
            offers,
            to_document=offer_to_document,
            from_document=offer_from_document,
            id_of=lambda offer: offer.offer_id,
        )
        self.notifications = notifications
        self.inboxes = Repository(
            inboxes,
            to_document=inbox_to_document,
            from_document=inbox_from_document,
            id_of=lambda inbox: inbox.recipient_id,
        )
        self.email_sends = email_sends

    @classmethod
    def on(cls, documents: Callable[[str], Documents]) -> NotificationStore:
        """The store over the collections `documents` gives for each name."""
        return cls(*(documents(name) for name in COLLECTIONS))

    @classmethod
    def in_memory(cls) -> NotificationStore:
        return cls.on(MemoryDocuments)

    async def ensure_indexes(self) -> None:
        await self.offers.ensure_indexes()
        await ensure_outbox_indexes(self.notifications)
        # The inbox, all and unread only, newest first (runtime.pages order: created_at, _id).
        await self.notifications.ensure_index("recipient_id", "created_at", "_id")
        await self.notifications.ensure_index("recipient_id", "read", "created_at", "_id")
        # The recipient's stream, resumed after a number (services.notification_service.stream).
        await self.notifications.ensure_index("recipient_id", "seq")
        # The email sender's waiting list.
        await self.notifications.ensure_index(EMAIL_STATE, EMAIL_MODE)
        await self.inboxes.ensure_indexes()

    # --- the inbox --------------------------------------------------------------------------


async def adopt_legacy_reminders(database: AsyncDatabase[Document]) -> int:
    """Moves the pending reminders of the former `reminders` collection into their offers'
    projections, then drops it; returns how many offers took some. Run at start-up, before
    the consumers: a projection that has reminders of its own already (written by this
    version) keeps them, and the notification ids derive from (offer, version, lead) as
    before, so a reminder moved twice (two instances starting at once) is still notified
    once."""
    if "reminders" not in await database.list_collection_names():
        return 0
    legacy = database["reminders"]
    by_offer: dict[tuple[str, int], list[dict[str, Any]]] = {}
    async for reminder in legacy.find({"state": PENDING}):
        key = (reminder["offer_id"], reminder["version"])
        by_offer.setdefault(key, []).append(
            {"lead_seconds": reminder["lead_seconds"], "due_at": reminder["due_at"]}
        )
    adopted = 0
    for (offer_id, version), plans in by_offer.items():
        plans.sort(key=lambda plan: plan["due_at"])
        moved = await database["offers"].update_one(
            {"_id": offer_id, "version": version, "status": PENDING, "reminders": None},
            {
                "$set": {"reminders": plans, DUE_BUCKET: due_bucket(plans[0]["due_at"])},
                "$inc": {"revision": 1},
            },
        )
        adopted += moved.modified_count
    await legacy.drop()
    log.info(
        "moved the pending reminders of %d offer(s) into their projections; the former "
        "reminders collection is dropped",
        adopted,
    )
    return adopted


# What a former preferences document does not bring into its inbox (which has its own).
_NOT_MOVED: Final = ("_id", "revision", "created_at", "updated_at")


async def adopt_legacy_preferences(database: AsyncDatabase[Document]) -> int:
    """Moves the documents of the former `preferences` collection into the recipients'
    inboxes, then drops it; returns how many moved. Run at start-up, before the consumers.
    Each moves whole (its outbox and the commands it remembers too) beside the inbox's
    counter, which keeps its number; the counters that had no `revision` (they were written
    by `$inc`) get one first, as every aggregate needs it. Repeatable: a second run (two
    instances starting at once) sets the same fields again."""
    if "preferences" not in await database.list_collection_names():
        return 0
    inboxes = database["inboxes"]
    await inboxes.update_many({"revision": {"$exists": False}}, {"$set": {"revision": 1}})
    moved = 0
    async for chosen in database["preferences"].find({}):
        fields = {k: v for k, v in chosen.items() if k not in _NOT_MOVED}
        await inboxes.update_one(
            {"_id": chosen["_id"]},
            {
                "$set": {**fields, "chosen_at": chosen["updated_at"]},
                "$inc": {"revision": 1},
                "$setOnInsert": {"last_seq": 0},
            },
            upsert=True,
        )
        moved += 1
    await database["preferences"].drop()
    log.info(
        "moved the notification preferences of %d recipient(s) into their inboxes; the "
        "former preferences collection is dropped",
        moved,
    )
    return moved
