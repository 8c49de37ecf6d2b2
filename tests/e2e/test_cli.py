"""The `offers` CLI as a person runs it: a real subprocess against the three services as
processes, on the test Kafka."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from services.processes import REPO
from tests.conftest import RUN_ID
from tests.e2e.processes import ServiceProcess, launch
from tests.infrastructure import Endpoints

pytestmark = pytest.mark.e2e

PORTS = {"offer_service": 18301, "messaging_service": 18302, "notification_service": 18303}
EXTEND = [
    "--title", "Checkout redesign", "--description", "The checkout flow, as agreed.",
    "--rate", "45", "--weekly-limit", "30", "--start", "+3", "--end", "+60",
]  # fmt: skip


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
async def system(
    infra: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, ServiceProcess]]:
    logs = tmp_path_factory.mktemp("e2e-cli-logs")
    # A run id of its own: consumer groups and databases apart from the other e2e modules.
    run = RUN_ID + "cli"
    services = {name: await launch(name, port, infra, logs, run) for name, port in PORTS.items()}
    try:
        for service in services.values():
            await asyncio.to_thread(service.wait_healthy)
        yield services
    finally:
        for service in services.values():
            service.stop()


@pytest.fixture(scope="module")
def cli_env(system: dict[str, ServiceProcess], infra: Endpoints) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OFFERS_ACTOR"}
    return {
        **env,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "OFFER_SERVICE_URL": system["offer_service"].url,
        "MESSAGING_SERVICE_URL": system["messaging_service"].url,
        "NOTIFICATION_SERVICE_URL": system["notification_service"].url,
    }


async def offers(env: dict[str, str], *argv: str, within: float = 90) -> Ran:
    """Runs `offers ARGV` as a separate process, as a person would."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "offers_cli", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=within,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def ids() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"offer-{tag}", f"client-{tag}", f"free-{tag}"


def wait_for_offer(url: str, actor: str, within: float = 15) -> None:
    """The read API is a projection: let it catch up before reading through it (as a party:
    the offer is shown to its parties only)."""
    deadline = time.monotonic() + within
    request = urllib.request.Request(url, headers={"X-Actor-Id": actor})
    while True:
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except urllib.error.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def test_extend_prints_the_offer_extended(cli_env: dict[str, str]) -> None:
    offer_id, client, freelancer = ids()
    ran = await offers(
        cli_env, "extend", "--as", client, "--freelancer", freelancer, "--offer-id", offer_id,
        *EXTEND,
    )  # fmt: skip
    assert ran.code == 0, ran
    assert f"→ ExtendOffer offer_id={offer_id}" in ran.out
    assert f"✔ OfferExtended offer {offer_id} version 1: {client} → {freelancer}" in ran.out
    assert "hourly 45.00 USD/h" in ran.out


async def test_two_terminals_from_extend_to_an_active_contract(
    cli_env: dict[str, str], system: dict[str, ServiceProcess]
) -> None:
    offer_id, client, freelancer = ids()
    as_client = {**cli_env, "OFFERS_ACTOR": client}
    as_freelancer = {**cli_env, "OFFERS_ACTOR": freelancer}
    extended = await offers(
        as_client, "extend", "--freelancer", freelancer, "--offer-id", offer_id, *EXTEND
    )
    assert extended.code == 0, extended
    await asyncio.to_thread(
        wait_for_offer, f"{system['offer_service'].url}/offers/{offer_id}", freelancer
    )

    # The freelancer accepts without naming a version: the CLI reads the current one.
    accepted = await offers(as_freelancer, "accept", offer_id)
    assert accepted.code == 0, accepted
    assert f"→ AcceptOffer offer_id={offer_id} version=1" in accepted.out
    assert f"✔ OfferAccepted offer {offer_id} version 1 accepted by {freelancer}" in accepted.out
    assert "✔ ContractActivated contract " in accepted.out

    contracts = await offers(as_client, "contracts", "--client", client)
    assert contracts.code == 0, contracts
    assert "active" in contracts.out and freelancer in contracts.out

    # The reads are the reader's: nobody named, a stranger, another party's list.
    nobody = await offers(cli_env, "show", "offer", offer_id)
    assert nobody.code == 2 and "OFFERS_ACTOR" in nobody.err, nobody
    stranger = await offers({**cli_env, "OFFERS_ACTOR": "x-stranger"}, "show", "offer", offer_id)
    assert stranger.code == 1 and f"no offer with id '{offer_id}'" in stranger.err, stranger
    theirs = await offers(as_freelancer, "contracts", "--client", client)
    assert theirs.code == 1 and "may list your own items only" in theirs.err, theirs


async def test_accepting_someone_elses_offer_is_rejected(cli_env: dict[str, str]) -> None:
    offer_id, client, freelancer = ids()
    extended = await offers(
        cli_env, "extend", "--as", client, "--freelancer", freelancer, "--offer-id", offer_id,
        *EXTEND,
    )  # fmt: skip
    assert extended.code == 0, extended
    ran = await offers(cli_env, "accept", offer_id, "--as", "someone-else", "--version", "1")
    assert ran.code == 1, ran
    assert "✘ rejected (not_authorized)" in ran.out


async def test_the_demo_plays_a_whole_negotiation(cli_env: dict[str, str]) -> None:
    ran = await offers(cli_env, "demo", within=120)
    assert ran.code == 0, ran
    for step in range(1, 8):
        assert f"\n{step}. " in ran.out, ran.out
    for expected in (
        "✔ OfferExtended",
        "✔ TermsProposed",
        "hourly_rate 45.00 → 55.00",
        "✔ OfferChanged",
        "version 2",
        "✔ OfferAccepted",
        "✔ ContractActivated",
        "[talent_cloud_joined]",
        "[offer_accepted]",
        "✔ Done: contract ",
    ):
        assert expected in ran.out, ran.out
    assert ": active since " in ran.out  # the contract, read back from the read API
    assert ran.err == ""


async def test_kafka_unreachable_is_one_line_and_no_traceback(cli_env: dict[str, str]) -> None:
    _, client, freelancer = ids()
    env = {**cli_env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    for argv in (
        ["extend", "--as", client, "--freelancer", freelancer, *EXTEND],
        ["watch", "offers.events"],
    ):
        ran = await offers(env, *argv, within=60)
        assert ran.code == 3, ran
        lines = [line for line in ran.err.splitlines() if not line.startswith("watching ")]
        assert lines == ["offers: cannot reach Kafka at 127.0.0.1:1 — is `make run` going?"]
        assert "Traceback" not in ran.out + ran.err
