"""Records whose aggregate is not known yet, kept in the service's database instead of
holding up the partition (SPEC §4's bounded wait, without the wait).

A command for an offer or contract the service has not heard of is parked, and the
consumer moves on. Commands for the same aggregate that come behind it are parked behind
it, so their order holds. The aggregate's writer (the handler of its partition) releases
them, in order, as soon as the aggregate is stored; or refuses each one whose wait ran out,
when the deadline sweep asks it to (contracts.internal.ReleaseParked). A parked record is
one document, so it survives a restart; it is released or refused once, because only the
aggregate's writer touches it and it is deleted only after its outcome is stored.

Events can be parked too (notification_service's messages about an offer not yet
projected): they have no deadline, since an event is a fact that can only be applied late.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .batch import current
from .documents import Document, Documents
from .wire import RecordOrigin

log = logging.getLogger(__name__)

FLAG = "parked"


@dataclass(frozen=True, slots=True)
class Parked:
    parked_id: str
    key: str
    origin: RecordOrigin
    raw: bytes
    parked_at: datetime
    deadline: datetime | None
    code: str | None
    message: str | None

    @classmethod
    def from_document(cls, document: Document) -> Parked:
        origin = RecordOrigin(
            document["topic"],
            document["partition"],
            document["offset"],
            None if document.get("record_key") is None else document["record_key"].encode(),
        )
        return cls(
            document["_id"],
            document["key"],
            origin,
            document["payload"].encode(),
            document["parked_at"],
            document.get("deadline"),
            document.get("code"),
            document.get("message"),
        )


class Parking:
    def __init__(self, documents: Documents, clock: Callable[[], datetime]) -> None:
        self.documents = documents
        self.clock = clock
        # Aggregates with parked records: checked before each record of theirs, so a
        # record never overtakes one parked before it. Only grows on a reload (a stale key
        # costs one lookup), so a reload racing a release cannot lose a key.
        self.keys: set[str] = set()
        # Records parked per key since the key was last let go (`forget`).
        self._parks: Counter[str] = Counter()
        # When each parked command's wait runs out, soonest first: kept in memory by the
        # instance that holds its partition (and learnt again by `reload`), so no sweep has
        # to read the parked documents over and over to find the ones due.
        self._deadlines: list[tuple[datetime, str]] = []
        self._reminding: set[tuple[datetime, str]] = set()  # each once, however often reloaded

    async def ensure_indexes(self) -> None:
        for field in (FLAG, "key"):
            await self.documents.ensure_index(field)

    async def reload(self) -> None:
        """Learns what is parked: at start-up, and whenever partitions are assigned (an
        instance that wrote them may have parked records meanwhile)."""
        for document in await self.documents.find(FLAG, True):
            self.keys.add(document["key"])
            if document.get("deadline") is not None:
                self.remind(document["key"], document["deadline"])

    def remind(self, key: str, at: datetime) -> None:
        """`due` names `key` once `at` has passed."""
        if (at, key) not in self._reminding:
            self._reminding.add((at, key))
            heapq.heappush(self._deadlines, (at, key))

    def due(self) -> list[str]:
        """The aggregates with a parked command whose wait has run out since last asked."""
        now, found = self.clock(), dict[str, None]()
        while self._deadlines and self._deadlines[0][0] <= now:
            reminder = heapq.heappop(self._deadlines)
            self._reminding.discard(reminder)
            found[reminder[1]] = None
        return [key for key in found if key in self.keys]

    def holds(self, key: str) -> bool:
        return key in self.keys

    async def park(
        self,
        key: str,
        origin: RecordOrigin,
        raw: bytes,
        *,
        wait: timedelta | None,
        code: str | None = None,
        message: str | None = None,
    ) -> bool:
        """Keeps the record until its aggregate arrives (once, however often delivered);
        whether it was new."""
        now = self.clock()
        deadline = None if wait is None else now + wait
        self.keys.add(key)
        self._parks[key] += 1
        if deadline is not None:
            self.remind(key, deadline)
        return await self.documents.insert(
            {
                "_id": origin.record_id,
                FLAG: True,
                "key": key,
                "topic": origin.topic,
                "partition": origin.partition,
                "offset": origin.offset,
                "record_key": None if origin.key is None else origin.key.decode("utf-8", "replace"),
                "payload": raw.decode("utf-8"),
                "parked_at": now,
                "deadline": deadline,
                "code": code,
                "message": message,
            }
        )

    async def waiting(self, key: str) -> list[Parked]:
        """The aggregate's parked records, oldest first (they all come from one partition)."""
        found = await self.documents.find("key", key)
        parked = sorted((Parked.from_document(d) for d in found), key=lambda p: p.origin.offset)
        if not parked:
            self.forget(key)
        return parked

    def forget(self, key: str) -> None:
        """No record of `key` is parked any more. In a batch, only once the batch is stored:
        a batch that fails (or is handled again, reading first) stored none of its deletions,
        so the records it released are parked still, and their key must stay held, or
        nothing would release them again. (A key held with nothing parked costs a lookup.)"""
        parks = self._parks[key]

        def let_go() -> None:
            if self._parks[key] == parks:  # not parked again meanwhile
                self.keys.discard(key)
                del self._parks[key]

        batch = current.get()
        if batch is None:
            let_go()
        else:
            batch.stored.append(let_go)

    async def remove(self, parked: Parked) -> None:
        await self.documents.delete(parked.parked_id)

    async def stats(self) -> tuple[int, float]:
        """How many records are parked, and the age in seconds of the oldest."""
        found = await self.documents.find(FLAG, True)
        if not found:
            return 0, 0.0
        oldest = min(document["parked_at"] for document in found)
        return len(found), (self.clock() - oldest).total_seconds()
