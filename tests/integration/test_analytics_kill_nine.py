"""`kill -9` of the analytics consumer at random moments, then a restart: every table ends as
in a warehouse that read the same events in one uninterrupted run (SPEC §5's history,
exactly once into DuckDB: each batch's rows and offsets commit together or not at all)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest

from analytics.consumer import Settings, run, start_at_the_end
from bench.analytics import events, publish
from tests.infrastructure import REPO, Endpoints

pytestmark = pytest.mark.integration

OFFERS = 1_500
# Each table's rows of this test's offers (others' tests may share the topics).
MINE = {
    "offers": "offer_id",
    "offer_versions": "offer_id",
    "contracts": "offer_id",
    "talent_cloud_members": "contract_id",
    "events": "aggregate_id",
}


def rows_of(database: Path, tag: str) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return {
            table: connection.execute(
                f"SELECT * FROM {table} WHERE {key} LIKE ? ORDER BY ALL", [f"{tag}-%"]
            ).fetchall()
            for table, key in MINE.items()
        }


def read_so_far(database: Path) -> int:
    with duckdb.connect(str(database), read_only=True) as connection:
        found = connection.execute("SELECT sum(next_offset) FROM kafka_offsets").fetchone()
    assert found is not None
    return int(found[0])


async def started_then_killed(env: dict[str, str], rng: random.Random) -> None:
    """Starts `python -m analytics`, lets it read for a random moment, then SIGKILL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "analytics", cwd=REPO, env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(60):
            while b"records to read" not in (line := await process.stderr.readline()):
                assert line, "the consumer stopped before it began reading"
        await asyncio.sleep(rng.uniform(0.05, 0.6))
    finally:
        process.kill()  # SIGKILL: no clean-up of any kind
        await process.wait()


async def test_kill_nine_at_random_moments_then_a_restart_counts_everything_once(
    infra: Endpoints, tmp_path: Path
) -> None:
    tag, rng = f"k9{uuid.uuid4().hex[:6]}", random.Random()
    reference, killed = tmp_path / "reference.duckdb", tmp_path / "killed.duckdb"
    await start_at_the_end(Settings(infra.kafka_bootstrap_servers, str(reference)))
    shutil.copy(reference, killed)  # both start at the same offsets
    start = read_so_far(killed)
    sent = await publish(infra.kafka_bootstrap_servers, events(tag, OFFERS), say=False)

    await run(Settings(infra.kafka_bootstrap_servers, str(reference)), until_caught_up=True)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "ANALYTICS_DB": str(killed),
        "ANALYTICS_BATCH": "40",  # many small transactions: many moments to die in
    }
    progress = []
    for _ in range(5):
        await started_then_killed(env, rng)
        progress.append(read_so_far(killed) - start)
    # The kills fell while it was reading, not before or after.
    assert 0 < progress[-1] < sent, f"read {progress} of {sent} records at the kills"
    assert progress == sorted(progress)

    caught_up = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "analytics", "--until-caught-up", cwd=REPO, env=env
    )
    assert await caught_up.wait() == 0
    expected, found = rows_of(reference, tag), rows_of(killed, tag)
    assert len(expected["offers"]) == OFFERS
    for table in MINE:
        assert found[table] == expected[table], f"{table} differs after the kills"
