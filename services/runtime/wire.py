"""Where a record came from, and ids derived from other ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.structs import ConsumerRecord
from faststream.message import StreamMessage

from services.rules import derived_id


async def raw_body(message: StreamMessage[Any]) -> bytes:
    """FastStream decoder that keeps the bytes: we parse (and dead-letter) ourselves."""
    return message.body


@dataclass(frozen=True, slots=True)
class RecordOrigin:
    """Where a record came from: enough to find it again and to dead-letter it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp: float = 0.0  # when it was written, seconds since the epoch (0: not known)

    @classmethod
    def of(cls, record: ConsumerRecord[Any, Any]) -> RecordOrigin:
        key = record.key if isinstance(record.key, bytes | None) else str(record.key).encode()
        return cls(record.topic, record.partition, record.offset, key, record.timestamp / 1000)

    def dead_letter_headers(self, error: str) -> dict[str, str]:
        return {
            "source_topic": self.topic,
            "source_partition": str(self.partition),
            "source_offset": str(self.offset),
            "error": error,
        }

    @property
    def record_id(self) -> str:
        """A stable id for the record itself, for what cannot be named by a command_id."""
        return derived_id("record", self.topic, str(self.partition), str(self.offset))

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"
