"""One broker of a three-broker cluster killed with -9 while a mixed stream of commands runs,
started again later: with replication factor 3 and min.insync.replicas=2 the two left elect
new leaders and the verdict finds nothing lost, nothing doubled, one outcome per command.

The CI-sized run of `python -m faults broker-lost` (faults/cluster.py). It starts the cluster
(infra/cluster.py, ports KAFKA_CLUSTER_PORTS, from infra/test.env unless set) unless it runs,
and stops it at the end if it started it: three JVMs are too much to leave behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from faults.cluster import LAYOUT, SERVICE_ENV, broker_lost
from faults.scripts import Rig
from faults.system import REPO, System, cluster, cluster_bootstrap
from faults.verdict import Databases
from faults.wire import Recorder, Sender
from tests.conftest import RUN_ID
from tests.infrastructure import Endpoints, own_infra_env

pytestmark = pytest.mark.e2e

BASE_PORT = 18711  # the three services: 18711-18713
# Where infra/cluster.py keeps the cluster and which ports it takes: the environment's, else
# the tests' own (infra/test.env).
CLUSTER_ENV = (
    "INFRA_DIR",
    "INFRA_CACHE_DIR",
    "KAFKA_CLUSTER_PORTS",
    "KAFKA_CLUSTER_CONTROLLER_PORTS",
)


def cluster_runs() -> bool:
    status = [sys.executable, str(REPO / "infra" / "cluster.py"), "status"]
    return subprocess.run(status, capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    """The cluster's bootstrap list, with the cluster's settings in this process's
    environment (the topics made here and the services started here take them)."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in own_infra_env().items():
            if name in CLUSTER_ENV and name not in os.environ:
                env.setenv(name, value)
        for name, value in LAYOUT.items():
            env.setenv(name, value)
        started_here = not cluster_runs()
        if started_here:
            cluster("up")
        try:
            yield cluster_bootstrap()
        finally:
            if started_here:
                cluster("down")


@pytest.fixture(scope="module")
async def rig(
    infra: Endpoints, bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rig]:
    logs: Path = tmp_path_factory.mktemp("cluster")
    system = System(
        run_id=f"{RUN_ID}c",
        bootstrap=bootstrap,
        mongodb_url=infra.mongodb_url,
        log_dir=logs,
        base_port=BASE_PORT,
        extra_env=SERVICE_ENV,
    )
    recorder, sender = Recorder(bootstrap), Sender(bootstrap)
    databases = Databases(infra.mongodb_url, system.databases)
    await recorder.start()
    await sender.start()
    try:
        await system.start()
        yield Rig(system, recorder, sender, databases)
    finally:
        system.stop()
        await databases.close()
        await sender.stop()
        await recorder.stop()


async def test_one_broker_of_three_killed_mid_stream_loses_and_doubles_nothing(rig: Rig) -> None:
    began = time.monotonic()
    verdict = await broker_lost(rig, offers=24, seconds=16, after=4, down=12)
    print(f"\n{verdict.report()}\n  ({time.monotonic() - began:.1f}s)")
    assert verdict.passed, verdict.report()
    assert all(rig.system.alive().values()), "a service died on the way"
