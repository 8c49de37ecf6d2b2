"""messaging_service's MongoDB documents: one thread per offer (`threads`, _id = offer_id),
its messages (`messages`, one document each, _id derived from offer_id and message_id),
and remembered refusals (`rejections`, _id = command_id).

Every write is one atomic update of one document that also fills that document's outbox
(see services.runtime.outbox): the thread's ThreadClosed, a message's own event, a
rejection's CommandRejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import TypeAdapter
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from contracts import OfferTerms
from services.runtime.outbox import MongoOutbox, OutboxEntry, outbox_fields
from services.runtime.ownership import Ownership
from services.runtime.wire import derived_id

from .domain import OfferStatus, Thread

Document = dict[str, Any]
TERMS: TypeAdapter[OfferTerms] = TypeAdapter(OfferTerms)


class Conflict(Exception):
    """Somebody else wrote the thread since it was read; read again and decide again."""


@dataclass(frozen=True, slots=True)
class StoredThread:
    value: Thread
    revision: int
    document: Document


def message_document_id(offer_id: str, message_id: str) -> str:
    return derived_id("message", offer_id, message_id)


def thread_to_document(thread: Thread) -> Document:
    return {
        "offer_id": thread.offer_id,
        "client_id": thread.client_id,
        "freelancer_id": thread.freelancer_id,
        "status": thread.status.value,
        "version": thread.version,
        "terms": None if thread.terms is None else thread.terms.model_dump(mode="json"),
        "expires_at": thread.expires_at,
        "close_reason": thread.close_reason,
        "closed_at": thread.closed_at,
    }


def thread_from_document(document: Document) -> Thread:
    terms = document.get("terms")
    return Thread(
        offer_id=document["offer_id"],
        client_id=document["client_id"],
        freelancer_id=document["freelancer_id"],
        status=OfferStatus(document["status"]),
        version=document["version"],
        terms=None if terms is None else TERMS.validate_python(terms),
        expires_at=document.get("expires_at"),
        close_reason=document.get("close_reason"),
        closed_at=document.get("closed_at"),
    )


def answered_by(thread_document: Document, message_id: str) -> int | None:
    """The first offer version that answered the proposal `message_id`, if any."""
    versions = [
        answer["version"]
        for answer in thread_document.get("answers", ())
        if answer["message_id"] == message_id
    ]
    return min(versions) if versions else None


class ThreadStore(Protocol):
    async def get_thread(self, offer_id: str) -> StoredThread | None: ...

    async def save_thread(
        self,
        thread: Thread,
        expected: StoredThread | None,
        events: Sequence[OutboxEntry],
        answered: tuple[str, int] | None,
        now: datetime,
    ) -> Document: ...


class MongoThreadStore:
    """Collections: threads, messages, sequences.

    One writer per document (services.runtime.ownership), as FerretDB's updates are not
    atomic: a thread is written by the owner of its offers.events partition; its message
    counter (`sequences`) by the owner of its negotiations.commands partition; a message is
    inserted once and cleared once."""

    def __init__(
        self, database: AsyncDatabase[Document], *, threads_ownership: Ownership | None = None
    ) -> None:
        self.threads = database["threads"]
        self.messages = database["messages"]
        self.sequences = database["sequences"]
        self.threads_outbox = MongoOutbox(self.threads, threads_ownership)
        self.messages_outbox = MongoOutbox(self.messages)
        self.outboxes = (self.threads_outbox, self.messages_outbox)

    async def ensure_indexes(self) -> None:
        for outbox in self.outboxes:
            await outbox.ensure_indexes()
        # The read API pages a thread's messages by their sequence number.
        await self.messages.create_index([("offer_id", ASCENDING), ("seq", DESCENDING)])
        # Command-level idempotency: a redelivered command finds its message.
        await self.messages.create_index("command_id")

    # threads

    async def get_thread(self, offer_id: str) -> StoredThread | None:
        document = await self.threads.find_one({"_id": offer_id})
        if document is None:
            return None
        return StoredThread(thread_from_document(document), document["revision"], document)

    async def save_thread(
        self,
        thread: Thread,
        expected: StoredThread | None,
        events: Sequence[OutboxEntry],
        answered: tuple[str, int] | None,
        now: datetime,
    ) -> Document:
        """Creates (expected None) or conditionally updates the thread; the events go in
        its outbox in the same write. Raises Conflict when somebody wrote it meanwhile."""
        answer = None if answered is None else {"message_id": answered[0], "version": answered[1]}
        fields: Document = {**thread_to_document(thread), "updated_at": now}
        if events:
            fields.update(outbox_fields(events, now))
        if expected is None:
            document: Document = {
                "_id": thread.offer_id,
                **fields,
                "created_at": now,
                "revision": 1,
                "answers": [] if answer is None else [answer],
            }
            document.setdefault("outbox", [])
            try:
                await self.threads.insert_one(document)
            except DuplicateKeyError:
                raise Conflict(thread.offer_id) from None
            return document
        update: Document = {"$set": {**fields, "revision": expected.revision + 1}}
        if answer is not None:
            update["$addToSet"] = {"answers": answer}
        updated = await self.threads.find_one_and_update(
            {"_id": thread.offer_id, "revision": expected.revision},
            update,
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:
            raise Conflict(thread.offer_id)
        return updated

    async def record_answer(self, offer_id: str, message_id: str, version: int) -> None:
        """Links a proposal to the offer version that answered it (the first such)."""
        document_id = message_document_id(offer_id, message_id)
        proposal = await self.messages.find_one({"_id": document_id, "kind": "terms_proposal"})
        if proposal is None:
            return
        answered = proposal.get("answered_by_version")
        if answered is None or answered > version:
            await self.messages.update_one(
                {"_id": document_id}, {"$set": {"answered_by_version": version}}
            )

    async def next_seq(self, offer_id: str) -> int:
        """The next message number in the thread (gaps are harmless; order is what counts)."""
        document = await self.sequences.find_one_and_update(
            {"_id": offer_id},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert document is not None
        seq: int = document["seq"]
        return seq

    # messages

    async def message_by_command(self, command_id: str) -> Document | None:
        return await self.messages.find_one({"command_id": command_id})

    async def message(self, offer_id: str, message_id: str) -> Document | None:
        return await self.messages.find_one({"_id": message_document_id(offer_id, message_id)})

    async def add_message(
        self, fields: Document, entry: OutboxEntry, now: datetime
    ) -> Document | None:
        """Stores a message with its event; None when that message_id is already stored."""
        document = {
            "_id": message_document_id(fields["offer_id"], fields["message_id"]),
            **fields,
            "revision": 1,
            **outbox_fields([entry], now),
        }
        try:
            await self.messages.insert_one(document)
        except DuplicateKeyError:
            return None
        return document
