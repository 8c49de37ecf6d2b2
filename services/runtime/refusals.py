"""Refusing a command: one CommandRejected, remembered by (aggregate, command_id) so that a
redelivered command is refused only once (SPEC §4: a handled command_id produces nothing new). The
rejection is written by the handler of the command's partition, like everything else."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

from pymongo.asynchronous.collection import AsyncCollection

from contracts import (
    Command,
    CommandRejected,
    CommandType,
    FieldError,
    InvalidCommand,
    RejectionCode,
    topics,
)
from contracts.parsing import valid_id
from services.rules import Rejection, derived_id

from .clock import utc_now
from .documents import Document, Documents
from .metrics import ServiceMetrics
from .outbox import OutboxEntry
from .topics import TopicLayout
from .uow import UnitOfWork
from .wire import RecordOrigin

log = logging.getLogger(__name__)

# How often a service forgets the rejections it no longer needs (services.runtime.app).
FORGET_EVERY_SECONDS: Final = 3600


def rejections_kept_for(layout: TopicLayout) -> timedelta | None:
    """How long a rejection is remembered: while the command it refused can still be read
    again from its topic (a rewound group) and while its CommandRejected is still on
    commands.rejected; None (forever) when either topic keeps its records forever."""
    kept = (layout.commands_retention_ms, layout.rejections_retention_ms)
    return None if -1 in kept else timedelta(milliseconds=max(kept))


async def forget_rejections(collection: AsyncCollection[Document], kept: timedelta) -> int:
    """Deletes the rejections stored longer than `kept` ago (FerretDB 1.24 has no TTL
    index), so that the collection, and the listing of its ids, stay as small as the
    refusals of one retention period. Nothing else writes a rejection once it is stored and
    published: its command's partition only inserts it, and only while the command can come
    again."""
    before = utc_now() - kept
    deleted = (await collection.delete_many({"created_at": {"$lt": before}})).deleted_count
    if deleted:
        log.info(
            "forgot %d rejection(s) stored before %s: their commands and CommandRejected "
            "events are past the topics' retention",
            deleted,
            before.isoformat(),
        )
    return deleted


class Refusals:
    """The `rejections` collection: one document per refused (aggregate, command_id), its
    CommandRejected in the document's outbox."""

    def __init__(
        self, documents: Documents, uow: UnitOfWork, metrics: ServiceMetrics | None = None
    ) -> None:
        self.documents = documents
        self.uow = uow
        self.metrics = metrics

    async def already_refused(self, key: str, command_id: str) -> bool:
        """True when this command was refused before for this aggregate (then its rejection
        is sure to be out). A command id is remembered per aggregate: the same id sent for
        another offer is another command."""
        document = await self.documents.get(refusal_id(key, command_id))
        if document is None:
            return False
        await self.uow.flush(self.documents, document)
        return True

    async def refuse(self, command: Command, rejection: Rejection) -> None:
        await self._refuse(
            command_id=command.command_id,
            command_type=command.type,  # type: ignore[arg-type]
            actor_id=command.actor_id,
            key=command.key,
            rejection=rejection,
        )

    async def refuse_invalid(self, invalid: InvalidCommand, origin: RecordOrigin) -> None:
        # The key it is answered under must be one a document can hold: the command's own
        # when it is a valid id, else the record's when that is, else the record's position.
        record_key = valid_id((origin.key or b"").decode("utf-8", "replace"))
        await self._refuse(
            command_id=invalid.command_id,
            command_type=invalid.command_type,
            actor_id=invalid.actor_id,
            key=invalid.key or record_key or origin.record_id,
            rejection=Rejection(
                RejectionCode.INVALID_COMMAND, invalid.message, tuple(invalid.errors)
            ),
            # No usable command_id: the record's position names the rejection instead.
            fallback_id=origin.record_id,
        )

    async def refuse_misplaced(self, command: Command, origin: RecordOrigin, why: str) -> None:
        """Refuses a command that is not on its aggregate's partition, without applying it
        or remembering it (the handler of that partition is the one to remember commands):
        the producer may send it again, keyed right, with the same command_id."""
        await self._refuse(
            command_id=command.command_id,
            command_type=command.type,  # type: ignore[arg-type]
            actor_id=command.actor_id,
            key=command.key,
            rejection=Rejection(
                RejectionCode.WRONG_KEY,
                why,
                (FieldError(field="key", message=f"must be {command.key!r}"),),
            ),
            fallback_id=origin.record_id,
            remember=False,
        )

    async def _refuse(
        self,
        *,
        command_id: str | None,
        command_type: CommandType,
        actor_id: str | None,
        key: str,
        rejection: Rejection,
        fallback_id: str | None = None,
        remember: bool = True,
    ) -> None:
        now = self.uow.clock()
        named_by = command_id if remember else fallback_id
        event = CommandRejected(
            event_id=derived_id("rejected", key, named_by or fallback_id or ""),
            occurred_at=now,
            causation_id=command_id or fallback_id,
            command_id=command_id,
            command_type=command_type,
            actor_id=actor_id,
            code=rejection.code,
            message=rejection.message,
            errors=list(rejection.errors),
            status=rejection.status,
        )
        entry = OutboxEntry.of(event, topic=topics.COMMANDS_REJECTED, key=key)
        log.info(
            "refused %s %s for %s: %s (%s)",
            command_type,
            command_id,
            key,
            rejection.code,
            rejection.message,
            extra={"command_id": command_id},
        )
        if command_id is None or not remember:
            self._count(command_type, rejection)
            await self.uow.publish([entry])  # nothing to remember it by
            return
        # Refused before (a redelivery): only what may still be unpublished goes out.
        document = {"_id": refusal_id(key, command_id), "key": key, "command_id": command_id}
        if await self.uow.insert_once(self.documents, document, [entry]):
            self._count(command_type, rejection)

    def _count(self, command_type: CommandType, rejection: Rejection) -> None:
        """Counts a refusal once: a redelivered command's refusal is not counted again."""
        if self.metrics is not None:
            self.metrics.rejected(command_type, rejection.code)


def refusal_id(key: str, command_id: str) -> str:
    """The refusal's document: one per (aggregate, command id)."""
    return derived_id("refusal", key, command_id)
