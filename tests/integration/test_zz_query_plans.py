"""Every query the services sent during this test run is served by an index.

For each query shape that tests/query_plans.py recorded (the services' own commands only),
this asks the real local backend, on a collection with thousands of documents:
- FerretDB's `explain`: was the filter pushed down to PostgreSQL at all? (FerretDB 1.x
  pushes down top-level equality on scalars; a range, `$in`, `$exists` or `$or` alone is
  filtered in Go after reading every document);
- PostgreSQL's plan (FerretDB returns it as `queryPlanner`): is it an index scan, or a
  sequential scan of the whole table?

The collection is a copy of the one the query ran on: the indexes the services declared on
it (from which infra/ferretdb builds its GIN indexes) and 3,000 variants of one of its
documents (or of the filter, when the test dropped its database), each with values of its
own, so that an index lookup is what a planner should choose.

It runs last (tests/conftest.py orders it so) to see every query of the session. Run alone,
it has nothing to check and says so.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.conftest import RUN_ID
from tests.infrastructure import Endpoints
from tests.query_plans import RECORDER, Query

pytestmark = [pytest.mark.integration, pytest.mark.query_plans]

VARIANTS = 3_000
# The GIN indexes are built by infra/ferretdb a moment after an index is declared.
INDEXER_WAIT_SECONDS = 15.0
# The services' collections every full run touches: a run that recorded none of these
# did not run the integration tier, and proves nothing.
EXPECTED = {"offers", "contracts", "threads", "messages", "notifications"}


# Queries that read a collection whole on purpose: the upgrades at notification_service's
# start-up (services.notification_service.store.adopt_legacy_*), once per deployment, move
# what a former version kept in `reminders` and `preferences` into the documents that keep
# it now, then drop those collections; the listing of a collection whose documents are
# few (services.runtime.batch.Listing: the inboxes), once per assignment of partitions, its
# ids only, given up beyond LISTED_AT_MOST of them; and the hourly forgetting of old
# rejections (services.runtime.refusals.forget_rejections), a range FerretDB 1.x cannot push
# down, over a collection that same forgetting keeps to one retention period's refusals.
def reads_whole_on_purpose(query: Query) -> bool:
    caller = query.caller
    listing = caller.startswith("services/runtime/batch.py:") and caller.endswith(" in load")
    forgetting = caller.startswith("services/runtime/refusals.py:") and caller.endswith(
        " in forget_rejections"
    )
    return listing or forgetting or " in adopt_legacy_" in caller


Document = dict[str, Any]


def variant(template: Document, i: int) -> Document:
    """A copy of `template` whose scalar values are its own, so an equality on any of them
    matches one document, as ids and keys do in production. Flags are left out: in
    production, few documents carry one (an outbox still pending)."""
    document: Document = {"_id": f"plan-{i}"}
    for key, value in template.items():
        if key == "_id" or isinstance(value, bool):
            continue
        if isinstance(value, str):
            document[key] = f"{value}~{i}"
        elif isinstance(value, int):
            document[key] = value + 1_000_000 + i
        else:
            document[key] = copy.deepcopy(value)
    return document


def nodes(plan: Any) -> list[Document]:
    """Every node of PostgreSQL's EXPLAIN (FORMAT JSON) tree."""
    if isinstance(plan, list):
        return [node for item in plan for node in nodes(item)]
    if not isinstance(plan, dict):
        return []
    own = [plan] if "Node Type" in plan else []
    return own + [node for value in plan.values() for node in nodes(value)]


def scans(plan: Any) -> list[str]:
    """The relations PostgreSQL reads by sequential scan anywhere in the plan."""
    return [str(n.get("Relation Name")) for n in nodes(plan) if n["Node Type"] == "Seq Scan"]


def uses_index(plan: Any) -> bool:
    return any("Index" in str(node["Node Type"]) for node in nodes(plan))


@pytest.fixture(scope="module")
async def plans_db(infra: Endpoints) -> AsyncIterator[AsyncDatabase[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    database = client[f"query_plans_{RUN_ID}"]
    await client.drop_database(database.name)
    yield database
    await client.drop_database(database.name)
    await client.close()


async def copy_of(
    source: AsyncDatabase[Document], plans: AsyncDatabase[Document], query: Query, name: str
) -> None:
    """The collection the query ran on, as `name`: its indexes and 3,000 documents."""
    collection = plans[name]
    declared = RECORDER.indexes.get((query.database, query.collection), {})
    for index_name, key in declared.items():
        await collection.create_index(list(key.items()), name=index_name)
    template = await source[query.collection].find_one({})
    template = template or {"_id": "none", **scalars(query.filter)}
    await collection.insert_many([variant(template, i) for i in range(VARIANTS)])


def scalars(filter_: Document) -> Document:
    simple = (str, int, float, datetime.datetime)
    return {k: v for k, v in filter_.items() if not k.startswith("$") and isinstance(v, simple)}


async def explain(database: AsyncDatabase[Document], collection: str, query: Query) -> Document:
    return await database.command({"explain": {"find": collection, "filter": query.filter}})


async def test_every_query_the_services_sent_is_served_by_an_index(
    infra: Endpoints, plans_db: AsyncDatabase[Document]
) -> None:
    queries = sorted(
        (q for q in RECORDER.queries.values() if not reads_whole_on_purpose(q)),
        key=lambda q: q.key,
    )
    seen = {query.collection for query in queries}
    if missing := EXPECTED - seen:
        pytest.fail(
            f"only {len(queries)} query shapes were recorded, none on "
            f"{sorted(missing)}: run this test in one session with the integration "
            "tier (pytest tests/integration), which sends the services' queries",
            pytrace=False,
        )
    client: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    copies: dict[tuple[str, str], str] = {}
    failures: list[str] = []
    try:
        for query in queries:
            origin = (query.database, query.collection)
            if origin not in copies:
                copies[origin] = f"{query.collection}_{len(copies)}"
                await copy_of(client[query.database], plans_db, query, copies[origin])
        loop = asyncio.get_running_loop()
        for query in queries:
            deadline = loop.time() + INDEXER_WAIT_SECONDS
            while True:
                result = await explain(plans_db, copies[(query.database, query.collection)], query)
                plan = result.get("queryPlanner")
                seq = scans(plan)
                indexed = result.get("filterPushdown") and not seq and uses_index(plan)
                if indexed or loop.time() > deadline:
                    break
                await asyncio.sleep(0.5)  # the GIN index may still be on its way
            if not result.get("filterPushdown"):
                failures.append(
                    f"{query.caller}: {query.command} on {query.collection} with "
                    f"{query.filter!r}: FerretDB filters it in Go after reading every "
                    "document (no top-level equality on a scalar to push down)"
                )
            elif not indexed:
                failures.append(
                    f"{query.caller}: {query.command} on {query.collection} with "
                    f"{query.filter!r}: PostgreSQL scans {seq or 'the table'} (no index "
                    "names the filtered fields: declare one in the store's ensure_indexes)"
                )
    finally:
        await client.close()
    print(f"\n{len(queries)} query shapes checked on {len(copies)} collections:")
    for query in queries:
        print(f"  {query.key}  ({query.caller})")
    assert not failures, "queries not served by an index:\n" + "\n".join(failures)
