"""One system of the three services (as processes, ports 18501-18503) shared by the fault
tests, the recorder of every output topic, a producer, and the services' databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from faults.system import System
from faults.verdict import Databases
from faults.wire import Recorder, Sender
from tests.conftest import RUN_ID
from tests.infrastructure import Endpoints

BASE_PORT = 18501


@pytest.fixture(scope="package")
async def recorder(infra: Endpoints) -> AsyncIterator[Recorder]:
    recorder = Recorder(infra.kafka_bootstrap_servers)
    await recorder.start()
    yield recorder
    await recorder.stop()


@pytest.fixture(scope="package")
async def sender(infra: Endpoints) -> AsyncIterator[Sender]:
    sender = Sender(infra.kafka_bootstrap_servers)
    await sender.start()
    yield sender
    await sender.stop()


@pytest.fixture(scope="package")
async def system(
    infra: Endpoints, recorder: Recorder, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[System]:
    logs: Path = tmp_path_factory.mktemp("faults")
    system = System(
        run_id=f"{RUN_ID}t",
        bootstrap=infra.kafka_bootstrap_servers,
        mongodb_url=infra.mongodb_url,
        log_dir=logs,
        base_port=BASE_PORT,
    )
    try:
        await system.start()
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="package")
async def databases(infra: Endpoints, system: System) -> AsyncIterator[Databases]:
    databases = Databases(infra.mongodb_url, system.databases)
    yield databases
    await databases.close()
