"""Every query the services send, recorded during the test run, so that one test can prove
each is served by an index (tests/integration/test_zz_query_plans.py).

A PyMongo command listener, registered before any client exists, sees every command of
every client in this process. It keeps the filters of the commands that the services' own
code sends (a frame under services/ on the stack: the tests' own reads are not the
product's), one sample per shape: the collection, the command and the filter with each
value replaced by its type. A new query in a service is therefore checked as soon as any
test runs it, without anybody listing it.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import monitoring

SERVICES = str(Path(__file__).resolve().parent.parent / "services") + "/"
# The commands that carry a filter, and where it sits in each.
FILTERS: dict[str, Callable[[Any], list[Any]]] = {
    "find": lambda c: [c.get("filter", {})],
    "findAndModify": lambda c: [c.get("query", {})],
    "update": lambda c: [u.get("q", {}) for u in c.get("updates", [])],
    "delete": lambda c: [d.get("q", {}) for d in c.get("deletes", [])],
    "count": lambda c: [c.get("query", {})],
    "distinct": lambda c: [c.get("query", {})],
    "aggregate": lambda c: [
        c["pipeline"][0]["$match"] if c.get("pipeline") and "$match" in c["pipeline"][0] else {}
    ],
}


def shape(value: Any) -> Any:
    """A filter with its values replaced by their types: `{"_id": "str", "revision": "int"}`."""
    if isinstance(value, dict):
        return {key: shape(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [shape(inner) for inner in value]
    return type(value).__name__


@dataclass(frozen=True)
class Query:
    """One query shape as the services sent it, with the first sample seen."""

    database: str
    collection: str
    command: str
    filter: dict[str, Any]
    caller: str  # services/...py:LINE, the service code that sent it

    @property
    def key(self) -> str:
        return f"{self.collection} {self.command} {shape(self.filter)}"


class QueryRecorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.queries: dict[str, Query] = {}
        # The indexes the services declared, by (database, collection): kept here because
        # most tests drop their databases before the check runs.
        self.indexes: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        extract = FILTERS.get(event.command_name)
        declaring = event.command_name == "createIndexes"
        if not (extract or declaring) or event.database_name in ("admin", "config", "local"):
            return
        caller = _service_caller()
        if caller is None:
            return
        collection = str(event.command[event.command_name])
        if declaring:
            with self._lock:
                declared = self.indexes.setdefault((event.database_name, collection), {})
                for index in event.command.get("indexes", []):
                    declared[index["name"]] = dict(index["key"])
            return
        assert extract is not None
        for found in extract(event.command):
            query = Query(event.database_name, collection, event.command_name, found, caller)
            with self._lock:
                self.queries.setdefault(query.key, query)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _service_caller() -> str | None:
    # Innermost first: the store method that sent the command, not the handler above it.
    for frame in reversed(traceback.extract_stack()):
        if frame.filename.startswith(SERVICES):
            return f"services/{frame.filename[len(SERVICES) :]}:{frame.lineno} in {frame.name}"
    return None


RECORDER = QueryRecorder()


def record_every_query() -> None:
    """Register once, before the first client is made (clients take listeners at birth)."""
    monitoring.register(RECORDER)
