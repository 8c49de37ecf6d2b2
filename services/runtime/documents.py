"""The few things the write side asks of a collection, behind one Protocol with two
implementations: MongoDB (PyMongo's async API) and an in-memory fake with the same
semantics, so every handler path also runs at unit speed (tests/handlers/).

Only what FerretDB does atomically is asked for: lookups by `_id` or by one field's
equality (served by an index), a unique `_id` insert, and single-document writes. Writes
conditioned on `revision` are not atomic on FerretDB; they are safe because each document
has one writer (services.runtime.service), and the condition still catches a breach of
that rule instead of losing a write silently.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

Document = dict[str, Any]


class Documents(Protocol):
    @property
    def name(self) -> str: ...

    async def get(self, document_id: str) -> Document | None: ...

    async def find(self, field: str, value: Any) -> list[Document]:
        """Every document whose `field` equals `value` (an index serves it)."""
        ...

    async def count(self, field: str, value: Any) -> int: ...

    async def insert(self, document: Document) -> bool:
        """Stores a new document; False when its `_id` exists already."""
        ...

    async def insert_write_once(self, document: Document) -> bool:
        """Stores a write-once document, whose repeat can only be the same document (a
        redelivery's): False when it exists already, as far as is known now. A batch
        inserts it without reading first, and if it was there keeps the stored one when it
        stores; so act on the answer only in ways a repeat may take back (a log line), never
        decide with it: `insert` answers truly."""
        ...

    async def replace(self, document: Document, *, revision: int) -> bool:
        """Replaces the stored document of the same `_id` if it is still at `revision`."""
        ...

    async def update(
        self,
        document_id: str,
        set_fields: Mapping[str, Any],
        *,
        unset: Sequence[str] = (),
        where: Mapping[str, Any] | None = None,
    ) -> bool:
        """Sets (and unsets) fields of one document, if it matches `where`; whether it did."""
        ...

    async def increment(self, document_id: str, field: str) -> int:
        """Adds one to a counter (a new document starts at 1) and returns its new value.
        Safe without atomicity because a counter, like every document, has one writer."""
        ...

    async def delete(self, document_id: str) -> None: ...

    async def ensure_index(self, *fields: str) -> None: ...


class MongoDocuments:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    @property
    def name(self) -> str:
        return self.collection.name

    async def get(self, document_id: str) -> Document | None:
        return await self.collection.find_one({"_id": document_id})

    async def find(self, field: str, value: Any) -> list[Document]:
        return [document async for document in self.collection.find({field: value})]

    async def count(self, field: str, value: Any) -> int:
        return await self.collection.count_documents({field: value})

    async def insert(self, document: Document) -> bool:
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            return False
        return True

    async def insert_write_once(self, document: Document) -> bool:
        return await self.insert(document)

    async def replace(self, document: Document, *, revision: int) -> bool:
        result = await self.collection.replace_one(
            {"_id": document["_id"], "revision": revision}, document
        )
        return result.matched_count == 1

    async def update(
        self,
        document_id: str,
        set_fields: Mapping[str, Any],
        *,
        unset: Sequence[str] = (),
        where: Mapping[str, Any] | None = None,
    ) -> bool:
        change: Document = {"$set": dict(set_fields)}
        if unset:
            change["$unset"] = dict.fromkeys(unset, "")
        result = await self.collection.update_one({"_id": document_id, **(where or {})}, change)
        return result.matched_count == 1

    async def increment(self, document_id: str, field: str) -> int:
        counter = await self.collection.find_one_and_update(
            {"_id": document_id},
            {"$inc": {field: 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert counter is not None  # an upsert returning the document after it always has one
        value: int = counter[field]
        return value

    async def delete(self, document_id: str) -> None:
        await self.collection.delete_one({"_id": document_id})

    async def ensure_index(self, *fields: str) -> None:
        await self.collection.create_index([(field, 1) for field in fields])


class MemoryDocuments:
    """The fake: a dict of deep copies, so a caller can no more change a stored document
    behind the store's back than it could in a database."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.documents: dict[str, Document] = {}

    @property
    def name(self) -> str:
        return self._name

    async def get(self, document_id: str) -> Document | None:
        found = self.documents.get(document_id)
        return None if found is None else copy.deepcopy(found)

    async def find(self, field: str, value: Any) -> list[Document]:
        return [copy.deepcopy(d) for d in self.documents.values() if d.get(field) == value]

    async def count(self, field: str, value: Any) -> int:
        return sum(1 for d in self.documents.values() if d.get(field) == value)

    async def insert(self, document: Document) -> bool:
        if document["_id"] in self.documents:
            return False
        self.documents[document["_id"]] = copy.deepcopy(document)
        return True

    async def insert_write_once(self, document: Document) -> bool:
        return await self.insert(document)

    async def replace(self, document: Document, *, revision: int) -> bool:
        stored = self.documents.get(document["_id"])
        if stored is None or stored.get("revision") != revision:
            return False
        self.documents[document["_id"]] = copy.deepcopy(document)
        return True

    async def update(
        self,
        document_id: str,
        set_fields: Mapping[str, Any],
        *,
        unset: Sequence[str] = (),
        where: Mapping[str, Any] | None = None,
    ) -> bool:
        stored = self.documents.get(document_id)
        if stored is None or not matches(stored, where):
            return False
        self.documents[document_id] = updated(stored, copy.deepcopy(dict(set_fields)), unset)
        return True

    async def increment(self, document_id: str, field: str) -> int:
        counter = self.documents.setdefault(document_id, {"_id": document_id})
        counter[field] = counter.get(field, 0) + 1
        value: int = counter[field]
        return value

    async def delete(self, document_id: str) -> None:
        self.documents.pop(document_id, None)

    async def ensure_index(self, *fields: str) -> None:
        return None


def matches(document: Mapping[str, Any], where: Mapping[str, Any] | None) -> bool:
    """Whether the document has each of `where`'s values (an update's condition)."""
    return all(document.get(k) == v for k, v in (where or {}).items())


def updated(
    document: Mapping[str, Any], set_fields: Mapping[str, Any], unset: Sequence[str]
) -> Document:
    """The document with `set_fields` set and `unset` removed, as an update leaves it."""
    changed = {**document, **set_fields}
    for field in unset:
        changed.pop(field, None)
    return changed
