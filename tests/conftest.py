from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from services.processes import start_at_the_end
from services.runtime.config import Settings
from tests.infrastructure import Endpoints, InfrastructureUnavailable, endpoints
from tests.kit import Probe, Producer
from tests.query_plans import record_every_query

record_every_query()  # before any client exists: see tests/integration/test_zz_query_plans.py

RUN_ID = uuid.uuid4().hex[:8]
# SPEC §4's bounded wait for an offer not heard of yet, shortened for the tests.
UNKNOWN_OFFER_WAIT_SECONDS = 3.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The query-plan check runs last, when every query of the session has been seen."""
    items.sort(key=lambda item: item.get_closest_marker("query_plans") is not None)


@pytest.fixture(scope="session")
def infra() -> Iterator[Endpoints]:
    try:
        with endpoints() as found:
            yield found
    except InfrastructureUnavailable as error:
        pytest.fail(str(error), pytrace=False)


def settings_for(infra: Endpoints, service: str, **overrides: object) -> Settings:
    """A service's settings against the test infrastructure, in a database of its own."""
    base = Settings.from_env(service, 0)
    values: dict[str, object] = {
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "mongodb_url": infra.mongodb_url,
        "database_name": f"test_{service}_{RUN_ID}",
        "kafka_group_id": f"test-{service}",
        "unknown_offer_wait_seconds": UNKNOWN_OFFER_WAIT_SECONDS,
        **overrides,
    }
    return replace(base, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def producer(infra: Endpoints) -> AsyncIterator[Producer]:
    producer = Producer(infra.kafka_bootstrap_servers)
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def probe(infra: Endpoints) -> AsyncIterator[Probe]:
    from contracts import topics

    probe = Probe(infra.kafka_bootstrap_servers, list(topics.OUTPUTS))
    await probe.start()
    yield probe
    await probe.stop()


async def fresh_settings(infra: Endpoints, service: str, **overrides: object) -> Settings:
    """Settings with a consumer group of this run's own that starts at the topics' current
    ends, so a test's service does not replay what earlier tests left on the topics."""
    settings = settings_for(infra, service, **overrides)
    group = f"{settings.kafka_group_id}-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    await start_at_the_end(infra.kafka_bootstrap_servers, service, group)
    return replace(settings, kafka_group_id=group)
