"""messaging_service's documents: one thread per offer (`threads`, _id = offer_id) and its
messages (`messages`, one document each, _id derived from offer_id and message_id). Each
write is one document with its events in its outbox (services.runtime.uow)."""

from __future__ import annotations

from pydantic import TypeAdapter

from contracts import MessagePosted, OfferTerms, PostMessage, ProposeTerms, TermsProposed
from services.rules import OfferStatus, derived_id
from services.runtime.documents import Document, Documents, MemoryDocuments
from services.runtime.outbox import ensure_outbox_indexes
from services.runtime.uow import Repository

from .domain import Thread

TERMS: TypeAdapter[OfferTerms] = TypeAdapter(OfferTerms)


def message_document_id(offer_id: str, message_id: str) -> str:
    return derived_id("message", offer_id, message_id)


def thread_to_document(thread: Thread) -> Document:
    return {
        "last_seq": thread.last_seq,
        "answers": [{"message_id": m, "version": v} for m, v in thread.answers],
        "offer_id": thread.offer_id,
        "client_id": thread.client_id,
        "freelancer_id": thread.freelancer_id,
        "status": thread.status.value,
        "version": thread.version,
        "terms": None if thread.terms is None else thread.terms.model_dump(mode="json"),
        "expires_at": thread.expires_at,
        "close_reason": thread.close_reason,
        "closed_at": thread.closed_at,
        "closed_seq": thread.closed_seq,
        "closed_by": thread.closed_by,
    }


def thread_from_document(document: Document) -> Thread:
    terms = document.get("terms")
    status = OfferStatus(document["status"])
    last_seq = document.get("last_seq", 0)
    closed_seq = document.get("closed_seq")
    if closed_seq is None and status.terminal:
        # Closed before ThreadClosed had a number: it comes after the thread's last message.
        closed_seq = last_seq + 1
    return Thread(
        offer_id=document["offer_id"],
        client_id=document["client_id"],
        freelancer_id=document["freelancer_id"],
        status=status,
        version=document["version"],
        terms=None if terms is None else TERMS.validate_python(terms),
        expires_at=document.get("expires_at"),
        close_reason=document.get("close_reason"),
        closed_at=document.get("closed_at"),
        last_seq=last_seq,
        answers=tuple((a["message_id"], a["version"]) for a in document.get("answers", ())),
        closed_seq=closed_seq,
        closed_by=document.get("closed_by"),
    )


def message_document(
    command: PostMessage | ProposeTerms, event: MessagePosted | TermsProposed, seq: int
) -> Document:
    document: Document = {
        "_id": message_document_id(command.offer_id, command.message_id),
        "offer_id": command.offer_id,
        "message_id": command.message_id,
        "command_id": command.command_id,
        "seq": seq,
        "sender_id": command.actor_id,
        "text": command.text,
        "sent_at": event.sent_at,
        "kind": "message",
    }
    if isinstance(event, TermsProposed):
        document.update(
            kind="terms_proposal",
            changes=event.changes.model_dump(mode="json"),
            differences=[d.model_dump(mode="json") for d in event.differences],
        )
    return document


class ThreadStore:
    """Threads (one per offer, _id = offer_id) and their messages (write-once, _id derived
    from offer_id and message_id); both written only by the thread's partition handler."""

    def __init__(self, threads: Documents, messages: Documents) -> None:
        self.threads = Repository(
            threads,
            to_document=thread_to_document,
            from_document=thread_from_document,
            id_of=lambda thread: thread.offer_id,
        )
        self.messages = messages

    @classmethod
    def in_memory(cls) -> ThreadStore:
        return cls(MemoryDocuments("threads"), MemoryDocuments("messages"))

    async def ensure_indexes(self) -> None:
        await self.threads.ensure_indexes()
        await ensure_outbox_indexes(self.messages)
        # The read API pages a thread's messages by their sequence number.
        await self.messages.ensure_index("offer_id", "seq")
