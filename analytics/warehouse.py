"""The DuckDB warehouse: its tables (each column described once, here), and the one
transaction per batch that lands a batch's events, refolds the aggregates they touch and
moves the Kafka offsets they came from, all or nothing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import duckdb

from contracts import topics

from .fold import (
    OFFER_TOPICS,
    Event,
    fold_contract,
    fold_members,
    fold_offer,
)

Columns = tuple[tuple[str, str, str], ...]
MONEY: Final = "DECIMAL(14, 2)"

# (column, type, what it holds), in the order of the rows in analytics.fold.
TABLES: Final[dict[str, tuple[str, Columns]]] = {
    "offers": (
        "One row per offer, from its events on offers.events and negotiations.events.",
        (
            ("offer_id", "VARCHAR", "the offer (the key of offers.events)"),
            ("client_id", "VARCHAR", "the client who extended it"),
            ("freelancer_id", "VARCHAR", "the freelancer it was extended to"),
            ("job_id", "VARCHAR", "the job it is for"),
            ("proposal_id", "VARCHAR", "the freelancer's proposal it answers"),
            ("contract_type", "VARCHAR", "hourly or fixed, in the last (or accepted) terms"),
            ("currency", "VARCHAR", "ISO 4217 code of the last (or accepted) terms"),
            ("first_amount", MONEY, "version 1's price: hourly_rate if hourly, else total_amount"),
            ("last_amount", MONEY, "the last version's price, or the accepted terms' one"),
            (
                "amount_change",
                "DOUBLE",
                "last_amount / first_amount - 1; NULL when the contract type or currency changed",
            ),
            ("versions", "INTEGER", "versions sent: 1 + each OfferChanged"),
            ("messages", "INTEGER", "messages posted in its thread (MessagePosted)"),
            ("proposals", "INTEGER", "counter-proposals made in its thread (TermsProposed)"),
            ("status", "VARCHAR", "pending, accepted, declined, withdrawn or expired"),
            ("extended_at", "TIMESTAMP", "when it was extended (UTC)"),
            ("ended_at", "TIMESTAMP", "when it was accepted, declined, withdrawn or expired (UTC)"),
            ("expires_at", "TIMESTAMP", "when the last version expires (UTC)"),
            ("close_reason", "VARCHAR", "the reason given on withdrawing, declining or expiry"),
        ),
    ),
    "offer_versions": (
        "Every version of every offer, terms whole, from OfferExtended and OfferChanged alone.",
        (
            ("offer_id", "VARCHAR", "the offer"),
            ("version", "INTEGER", "1 for OfferExtended, then one more per OfferChanged"),
            ("sent_at", "TIMESTAMP", "when this version was sent (the event's occurred_at, UTC)"),
            ("contract_type", "VARCHAR", "hourly or fixed"),
            ("currency", "VARCHAR", "ISO 4217 code"),
            ("amount", MONEY, "the price: hourly_rate if hourly, else total_amount"),
            ("title", "VARCHAR", "terms.title"),
            ("start_date", "DATE", "terms.start_date"),
            ("end_date", "DATE", "terms.end_date"),
            ("hourly_rate", MONEY, "terms.hourly_rate (hourly only)"),
            ("weekly_limit_hours", "INTEGER", "terms.weekly_limit_hours (hourly only)"),
            ("total_amount", MONEY, "terms.total_amount (fixed only)"),
            ("milestones", "JSON", "terms.milestones (fixed only)"),
            ("talent_cloud_id", "VARCHAR", "terms.talent_cloud_id"),
            ("po_number", "VARCHAR", "terms.po_number"),
            ("custom_fields", "JSON", "terms.custom_fields"),
            ("terms", "JSON", "the terms whole, as in the event"),
            ("message", "VARCHAR", "the client's message with this version"),
            ("in_response_to", "VARCHAR", "the counter-proposal (message_id) this answers"),
            ("expires_at", "TIMESTAMP", "when this version expires unless answered (UTC)"),
            ("event_id", "VARCHAR", "the event that sent it"),
        ),
    ),
    "contracts": (
        "One row per contract, from contracts.events.",
        (
            ("contract_id", "VARCHAR", "the contract (the key of contracts.events)"),
            ("offer_id", "VARCHAR", "the accepted offer"),
            ("offer_version", "INTEGER", "the version accepted"),
            ("job_id", "VARCHAR", "the job"),
            ("client_id", "VARCHAR", "the client"),
            ("freelancer_id", "VARCHAR", "the freelancer"),
            ("contract_type", "VARCHAR", "hourly or fixed"),
            ("currency", "VARCHAR", "ISO 4217 code"),
            ("amount", MONEY, "the price: hourly_rate if hourly, else total_amount"),
            ("talent_cloud_id", "VARCHAR", "the Talent Cloud the terms name, if any"),
            ("terms", "JSON", "the accepted terms whole"),
            ("activated_at", "TIMESTAMP", "when it became active (UTC)"),
            ("time_entries", "INTEGER", "time entries logged (TimeLogged)"),
            ("hours_logged", MONEY, "the hours of those entries"),
        ),
    ),
    "talent_cloud_members": (
        "Who joined which Talent Cloud, from talent-clouds.events.",
        (
            ("talent_cloud_id", "VARCHAR", "the Talent Cloud"),
            ("freelancer_id", "VARCHAR", "the freelancer who joined it"),
            ("contract_id", "VARCHAR", "the contract that made them a member"),
            ("joined_at", "TIMESTAMP", "when (UTC)"),
        ),
    ),
    "events": (
        "Every event read, raw, once (by event_id): what the tables above are folded from.",
        (
            ("event_id", "VARCHAR", "the event's id (stable across redelivery): once each"),
            ("type", "VARCHAR", "e.g. OfferExtended"),
            ("schema_version", "INTEGER", "as in the event; unknown versions are kept unfolded"),
            ("topic", "VARCHAR", "where it was first read"),
            ("aggregate_id", "VARCHAR", "its record key: offer, contract or Talent Cloud id"),
            ("occurred_at", "TIMESTAMP", "when it happened (UTC)"),
            ("payload", "JSON", "the event as it came"),
        ),
    ),
    "kafka_offsets": (
        "Where the consumer goes on from: written with the rows, in the same transaction.",
        (
            ("topic", "VARCHAR", "a topic read"),
            ("partition", "INTEGER", "one of its partitions"),
            ("next_offset", "BIGINT", "the offset of the next record to read"),
        ),
    ),
    "unreadable_records": (
        "Records that were no event (not JSON, or without event_id, type or occurred_at).",
        (
            ("topic", "VARCHAR", "where"),
            ("partition", "INTEGER", "which partition"),
            ("record_offset", "BIGINT", "which record"),
            ("error", "VARCHAR", "why it could not be read"),
        ),
    ),
}

FUNNEL_COLUMNS: Final[Columns] = (
    ("week", "DATE", "the Monday of the week the offers were extended in (UTC)"),
    ("contract_type", "VARCHAR", "hourly or fixed"),
    ("extended", "BIGINT", "offers extended that week"),
    ("negotiated", "BIGINT", "of those, with at least one message or counter-proposal"),
    ("changed", "BIGINT", "with more than one version"),
    ("accepted", "BIGINT", "accepted so far"),
    ("declined", "BIGINT", "declined"),
    ("withdrawn", "BIGINT", "withdrawn"),
    ("expired", "BIGINT", "expired"),
    ("pending", "BIGINT", "still open"),
    ("acceptance_rate", "DOUBLE", "accepted / extended"),
    ("median_hours_to_accept", "DOUBLE", "median hours from extended to accepted"),
    ("median_versions", "DOUBLE", "median versions per offer"),
    ("median_rate_change", "DOUBLE", "median amount_change of the accepted offers"),
)

FUNNEL_VIEW: Final = """
CREATE OR REPLACE VIEW offer_funnel AS
SELECT
    CAST(date_trunc('week', extended_at) AS DATE) AS week,
    contract_type,
    count(*) AS extended,
    count(*) FILTER (WHERE messages + proposals > 0) AS negotiated,
    count(*) FILTER (WHERE versions > 1) AS changed,
    count(*) FILTER (WHERE status = 'accepted') AS accepted,
    count(*) FILTER (WHERE status = 'declined') AS declined,
    count(*) FILTER (WHERE status = 'withdrawn') AS withdrawn,
    count(*) FILTER (WHERE status = 'expired') AS expired,
    count(*) FILTER (WHERE status = 'pending') AS pending,
    count(*) FILTER (WHERE status = 'accepted') / count(*) AS acceptance_rate,
    median(epoch(ended_at - extended_at) / 3600) FILTER (WHERE status = 'accepted')
        AS median_hours_to_accept,
    median(versions) AS median_versions,
    median(amount_change) FILTER (WHERE status = 'accepted') AS median_rate_change
FROM offers
GROUP BY ALL
ORDER BY week, contract_type
"""


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create(connection: duckdb.DuckDBPyConnection) -> None:
    """The tables, the view and their column comments (idempotent)."""
    connection.execute("BEGIN")
    for table, (about, columns) in TABLES.items():
        body = ", ".join(f"{name} {kind}" for name, kind, _ in columns)
        if table == "kafka_offsets":
            body += ", PRIMARY KEY (topic, partition)"
        connection.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
        connection.execute(f"COMMENT ON TABLE {table} IS {_sql_text(about)}")
        for name, _, what in columns:
            connection.execute(f"COMMENT ON COLUMN {table}.{name} IS {_sql_text(what)}")
    connection.execute(FUNNEL_VIEW)
    connection.execute(
        "COMMENT ON VIEW offer_funnel IS "
        + _sql_text("The offer funnel by week extended and contract type.")
    )
    for name, _, what in FUNNEL_COLUMNS:
        connection.execute(f"COMMENT ON COLUMN offer_funnel.{name} IS {_sql_text(what)}")
    connection.execute("COMMIT")


def connect(path: str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(path, read_only=read_only)
    if not read_only:
        create(connection)
    return connection


def stored_offsets(connection: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], int]:
    rows = connection.execute("SELECT topic, partition, next_offset FROM kafka_offsets").fetchall()
    return {(topic, partition): offset for topic, partition, offset in rows}


# --- writing ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__}")


def _insert(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    conflict: str = "",
) -> None:
    """Many rows in one statement: the rows go as one JSON parameter, which DuckDB unpacks
    (its executemany is a round trip per row, a hundred times slower)."""
    if not rows:
        return
    columns = TABLES[table][1]
    shape = {name: kind for name, kind, _ in columns}
    names = ", ".join(f"r.{name}" for name in shape)
    connection.execute(
        f"INSERT INTO {table} SELECT {names} FROM "
        f"(SELECT unnest(from_json(?::JSON, ?)) AS r) {conflict}",
        [json.dumps(list(rows), default=_plain), json.dumps([shape])],
    )


def _rows(items: Iterable[Any]) -> list[dict[str, Any]]:
    # Not dataclasses.asdict: it deep-copies every terms dict, ten times slower.
    return [{f.name: getattr(item, f.name) for f in dataclasses.fields(item)} for item in items]


@dataclass(frozen=True, slots=True)
class Landed:
    """One record as the consumer read it: an event, or why it is none."""

    topic: str
    partition: int
    offset: int
    event: Event | None
    error: str | None = None


def _event_row(landed: Landed) -> dict[str, Any]:
    event = landed.event
    assert event is not None
    return {
        "event_id": event.event_id,
        "type": event.type,
        "schema_version": event.schema_version,
        "topic": landed.topic,
        "aggregate_id": event.aggregate_id,
        "occurred_at": event.occurred_at,
        "payload": dict(event.data),
    }


def _events_of(
    connection: duckdb.DuckDBPyConnection,
    topics_: Sequence[str],
    ids: Sequence[str],
    freelancers: Sequence[str] | None = None,
) -> dict[str, list[Event]]:
    """The landed events of these aggregates (of these freelancers only, when given)."""
    query = (
        "SELECT event_id, type, schema_version, aggregate_id, occurred_at, payload FROM events "
        "WHERE topic IN (SELECT unnest(?)) AND aggregate_id IN (SELECT unnest(?))"
    )
    parameters: list[Any] = [list(topics_), list(ids)]
    if freelancers is not None:
        query += " AND payload->>'freelancer_id' IN (SELECT unnest(?))"
        parameters.append(list(freelancers))
    found: dict[str, list[Event]] = {}
    for event_id, type_, version, aggregate, occurred_at, payload in connection.execute(
        query, parameters
    ).fetchall():
        event = Event(event_id, type_, version, aggregate, occurred_at, json.loads(payload))
        found.setdefault(aggregate, []).append(event)
    return found


def write_batch(
    connection: duckdb.DuckDBPyConnection,
    batch: Sequence[Landed],
    next_offsets: Mapping[tuple[str, int], int],
) -> None:
    """In ONE transaction: the batch's new events, every row they change, and the offsets to
    go on from. A crash anywhere before COMMIT leaves the warehouse as before the batch, and
    the batch is read again from the stored offsets."""
    events = {b.event.event_id: b for b in batch if b.event is not None}
    touched: dict[str, set[str]] = {}
    for landed in events.values():
        assert landed.event is not None
        kind = "offer" if landed.topic in OFFER_TOPICS else landed.topic
        touched.setdefault(kind, set()).add(landed.event.aggregate_id)
        if landed.topic == topics.TALENT_CLOUDS_EVENTS:
            # A Talent Cloud may have thousands of members: refold only those touched.
            touched.setdefault("member", set()).add(str(landed.event.data.get("freelancer_id")))
    connection.execute("BEGIN")
    try:
        _insert(
            connection,
            "events",
            [_event_row(b) for b in events.values()],
            # Repeats of events already landed are left out (an anti-join: cheaper, on
            # hundreds of thousands of rows, than a primary key's index).
            "WHERE r.event_id NOT IN (SELECT event_id FROM events)",
        )
        _insert(
            connection,
            "unreadable_records",
            [
                {
                    "topic": b.topic,
                    "partition": b.partition,
                    "record_offset": b.offset,
                    "error": b.error,
                }
                for b in batch
                if b.event is None
            ],
        )
        _refold_offers(connection, sorted(touched.get("offer", ())))
        _refold_contracts(connection, sorted(touched.get(topics.CONTRACTS_EVENTS, ())))
        _refold_members(
            connection,
            sorted(touched.get(topics.TALENT_CLOUDS_EVENTS, ())),
            sorted(touched.get("member", ())),
        )
        _insert(
            connection,
            "kafka_offsets",
            [
                {"topic": topic, "partition": partition, "next_offset": offset}
                for (topic, partition), offset in next_offsets.items()
            ],
            "ON CONFLICT DO UPDATE SET next_offset = excluded.next_offset",
        )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _replace(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    key: str,
    ids: Sequence[str],
    rows: list[dict[str, Any]],
) -> None:
    connection.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT unnest(?))", [list(ids)])
    _insert(connection, table, rows)


class CannotFold(RuntimeError):
    """An aggregate's events that the folds cannot read: the batch is not written, and the
    consumer stops rather than count it wrong."""


@contextmanager
def _folding(kind: str, aggregate_id: str) -> Iterator[None]:
    try:
        yield
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise CannotFold(
            f"cannot fold {kind} {aggregate_id} from its events ({type(error).__name__}: "
            f"{error}); they are in the table `events` under aggregate_id = '{aggregate_id}'"
        ) from error


def _refold_offers(connection: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> None:
    if not ids:
        return
    offers, versions = [], []
    for offer_id, events in _events_of(connection, OFFER_TOPICS, ids).items():
        with _folding("offer", offer_id):
            offer, its_versions = fold_offer(events)
        if offer is not None:
            offers.append(offer)
        versions.extend(its_versions)
    _replace(connection, "offers", "offer_id", ids, _rows(offers))
    _replace(connection, "offer_versions", "offer_id", ids, _rows(versions))


def _refold_contracts(connection: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> None:
    if not ids:
        return
    contracts = []
    for contract_id, events in _events_of(connection, (topics.CONTRACTS_EVENTS,), ids).items():
        with _folding("contract", contract_id):
            contract = fold_contract(events)
        if contract is not None:
            contracts.append(contract)
    _replace(connection, "contracts", "contract_id", ids, _rows(contracts))


def _refold_members(
    connection: duckdb.DuckDBPyConnection, ids: Sequence[str], freelancers: Sequence[str]
) -> None:
    """The members of these clouds who are these freelancers: every pair of the two lists
    is deleted and folded again (a pair without events simply has no row)."""
    if not ids:
        return
    members = []
    found = _events_of(connection, (topics.TALENT_CLOUDS_EVENTS,), ids, freelancers)
    for cloud_id, events in found.items():
        with _folding("Talent Cloud", cloud_id):
            members += fold_members(events)
    connection.execute(
        "DELETE FROM talent_cloud_members WHERE talent_cloud_id IN (SELECT unnest(?)) "
        "AND freelancer_id IN (SELECT unnest(?))",
        [list(ids), list(freelancers)],
    )
    _insert(connection, "talent_cloud_members", _rows(members))


def markdown() -> str:
    """The columns of the tables an analyst queries, for the README (held to it by a test)."""
    parts = []
    documented = [(t, TABLES[t]) for t in ("offers", "offer_versions", "contracts")]
    documented.append(("offer_funnel (view)", ("", FUNNEL_COLUMNS)))
    for table, (_, columns) in documented:
        lines = [f"`{table}`:", "", "| column | type | what it holds |", "| --- | --- | --- |"]
        lines += [f"| `{name}` | {kind} | {what} |" for name, kind, what in columns]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
