"""The report from a warehouse filled by write_batch with generated events (DuckDB in
memory, no Kafka): the funnel's figures, and a page that needs no network."""

from __future__ import annotations

import json
import re

import duckdb
import pytest

from analytics.consumer import land
from analytics.report import funnel, html_page, table
from analytics.warehouse import CannotFold, connect, write_batch
from bench.analytics import events


def filled(offers: int) -> duckdb.DuckDBPyConnection:
    connection = connect(":memory:")
    records = list(events("report", offers))
    batch = [land(topic, 0, i, json.dumps(e).encode()) for i, (topic, _, e) in enumerate(records)]
    for start in range(0, len(batch), 97):  # in batches, as the consumer writes
        write_batch(connection, batch[start : start + 97], {("t", 0): start + 97})
    return connection


def test_the_funnel_counts_every_offer_once() -> None:
    connection = filled(300)
    rows = funnel(connection)
    assert sum(r["extended"] for r in rows) == 300
    for r in rows:
        ended = r["accepted"] + r["declined"] + r["withdrawn"] + r["expired"] + r["pending"]
        assert ended == r["extended"] >= r["negotiated"] >= 0
        assert r["acceptance_rate"] == r["accepted"] / r["extended"]
    by_status = dict(
        connection.execute("SELECT status, count(*) FROM offers GROUP BY 1").fetchall()
    )
    assert sum(r["accepted"] for r in rows) == by_status["accepted"]
    text = table(rows)
    assert len(text.splitlines()) == len(rows) + 2 and "accept %" in text


def test_the_page_carries_its_own_javascript() -> None:
    page = html_page(filled(100))
    assert page.count("<section>") == 5
    assert not re.search(r"<script[^>]+src=", page), "a script the page would have to fetch"
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js itself, inline


def test_events_that_cannot_be_folded_stop_the_batch_whole() -> None:
    connection = filled(5)
    before = connection.execute("SELECT * FROM kafka_offsets").fetchall()
    offers = connection.execute("SELECT count(*) FROM offers").fetchone()
    topic, _, extended = next(events("broken", 1))
    del extended["client_id"]  # required in schema_version 1
    broken = land(topic, 0, 999, json.dumps(extended).encode())
    with pytest.raises(CannotFold, match=extended["offer_id"]):
        write_batch(connection, [broken], {("t", 0): 1_000})
    assert connection.execute("SELECT * FROM kafka_offsets").fetchall() == before
    assert connection.execute("SELECT count(*) FROM offers").fetchone() == offers
    assert connection.execute(
        "SELECT count(*) FROM events WHERE aggregate_id = ?", [extended["offer_id"]]
    ).fetchone() == (0,)


def test_members_are_refolded_pair_by_pair_across_batches() -> None:
    connection = filled(300)
    added = {
        (e["talent_cloud_id"], e["freelancer_id"], e["contract_id"])
        for _, _, e in events("report", 300)
        if e["type"] == "TalentCloudMemberAdded"
    }
    stored = connection.execute(
        "SELECT talent_cloud_id, freelancer_id, contract_id FROM talent_cloud_members"
    ).fetchall()
    assert len(added) > 5 and sorted(stored) == sorted(added)
