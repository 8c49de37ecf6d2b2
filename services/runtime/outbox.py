"""The transactional outbox, on one MongoDB document at a time.

FerretDB (and a MongoDB without a replica set) has no multi-document transactions, so a
state change and the messages it causes are written in ONE write of ONE document: the
document carries an `outbox` array, and `outbox_since` and `outbox_pending: true` while
anything in it is unpublished. The unit of work (services.runtime.uow) publishes the outbox
after the write and then clears it, all before the record that caused it is acknowledged:
if the process dies in between, the record is handled again after the restart, finds the
outbox full and publishes it first. Messages keep their ids, so a repeat on the wire is
harmless to consumers.

A batch (services.runtime.batch) does not clear what it published: that would write every
document twice, and on FerretDB the second write (the whole document and its indexes again)
was half of the database's work. It marks the outbox with the record whose batch wrote it
(`outbox_from`) instead: the batch publishes before its offsets are committed, so a reader
that finds that offset committed knows the outbox published and leaves it; one that does
not (a crash between the write and the commit) publishes it again, as above.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from contracts import EVENT_TOPICS

PENDING = "outbox_pending"
# The batch that wrote the outbox, while it is publishing it: the batch empties its outboxes
# by this one value (services.runtime.batch), when it knows no record that wrote them.
OUTBOX_BATCH = "outbox_batch"
# The record (topic, partition, offset) whose batch stored and published the outbox: a batch
# publishes before its offsets are committed, so once that offset is committed the outbox
# is known published, and the document is not written again to empty it.
OUTBOX_FROM = "outbox_from"
# The Kafka header that carries an event's position in its pushed stream (services.runtime.
# streams): the thread's message number, the recipient's notification number.
STREAM_ID_HEADER = "stream-id"
# CloudEvents 1.0 in Kafka's binary mode: the event's attributes as `ce_` headers beside the
# unchanged JSON value, so that generic tooling can route and trace it without parsing it.
CLOUDEVENTS_SOURCE = "/offers-platform/{topic}"
_EVENT_TOPICS = frozenset(EVENT_TOPICS.values())


class MessageLike(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def key(self) -> str: ...
    def model_dump_json(self, *, by_alias: bool = ...) -> str: ...


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message exactly as it will go on the wire."""

    topic: str
    key: str
    type: str
    message_id: str
    payload: str
    stream_id: str | None = None
    """Its position in a pushed stream, for the STREAM_ID_HEADER (None: in none)."""

    @classmethod
    def of(
        cls,
        message: MessageLike,
        *,
        topic: str | None = None,
        key: str | None = None,
        stream_id: str | None = None,
    ) -> OutboxEntry:
        """An event goes to its type's topic under its own key; a command to itself names
        the service's internal topic."""
        topic = topic or EVENT_TOPICS[message.type]
        message_id = str(getattr(message, "event_id", None) or getattr(message, "command_id"))  # noqa: B009
        payload = message.model_dump_json()
        return cls(topic, key or message.key, message.type, message_id, payload, stream_id)

    def to_document(self) -> dict[str, str]:
        document = {
            "topic": self.topic,
            "key": self.key,
            "type": self.type,
            "event_id": self.message_id,
            "payload": self.payload,
        }
        if self.stream_id is not None:
            document["stream_id"] = self.stream_id
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> OutboxEntry:
        return cls(
            document["topic"],
            document["key"],
            document["type"],
            document["event_id"],
            document["payload"],
            document.get("stream_id"),
        )

    def headers(self) -> dict[str, str]:
        headers = {
            "type": self.type,
            "event_id": self.message_id,
            "content-type": "application/json",
        }
        if self.stream_id is not None:
            headers[STREAM_ID_HEADER] = self.stream_id
        if self.topic in _EVENT_TOPICS:
            headers.update(self.cloudevents_headers())
        return headers

    def cloudevents_headers(self) -> dict[str, str]:
        # Read from the payload, not stored apart: an outbox written before these headers
        # existed still publishes them.
        occurred_at = json.loads(self.payload)["occurred_at"]
        return {
            "ce_specversion": "1.0",
            "ce_id": self.message_id,
            "ce_type": self.type,
            "ce_source": CLOUDEVENTS_SOURCE.format(topic=self.topic),
            "ce_time": occurred_at,
            "ce_subject": self.key,
        }


def outbox_fields(entries: Sequence[OutboxEntry], now: datetime) -> dict[str, Any]:
    """The fields that put entries in a document's outbox (none when there are none)."""
    if not entries:
        return {"outbox": []}
    return {
        "outbox": [entry.to_document() for entry in entries],
        "outbox_since": now,
        PENDING: True,
    }


async def ensure_outbox_indexes(documents: Any) -> None:
    """The indexes of a collection with outboxes: the backlog, and a batch's outboxes."""
    await documents.ensure_index(PENDING)
    await documents.ensure_index(OUTBOX_BATCH)


def outbox_of(document: Mapping[str, Any]) -> list[OutboxEntry]:
    return [OutboxEntry.from_document(entry) for entry in document.get("outbox", ())]


class Publish(Protocol):
    async def __call__(self, entries: Sequence[OutboxEntry]) -> None: ...
