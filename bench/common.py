"""What every benchmark shares: endpoints, a run id, service processes, command payloads,
progress lines, percentiles and the printed tables."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Collection, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pymongo import AsyncMongoClient

from services.processes import ServiceProcess, start_at_the_end
from services.runtime.kafka_access import client_options
from tests.kit import hourly_terms as hourly_terms  # the same sample terms as the tests

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Endpoints:
    """Where the bench's Kafka and FerretDB are: by default a private pair started for the
    run (see private_infra), else KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL or the defaults."""

    kafka: str = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    mongodb_url: str = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017")


INFRA = Endpoints()
# A Kafka and FerretDB of the bench's own: the shared topics carry other people's test
# traffic, and every other consumer group on them (each test's services) would also handle
# the bench's commands, racing ours to the notification and loading their databases.
PRIVATE_INFRA_DIR = REPO / ".bench" / "infra"
PRIVATE_PORTS = {
    "KAFKA_PORT": "29392",
    "KAFKA_CONTROLLER_PORT": "29393",
    "MONGO_PORT": "27317",
    "POSTGRES_PORT": "29432",  # FerretDB's PostgreSQL (infra.py)
    "SMTP_PORT": "29525",  # infra.py's mail catcher (bench.email runs one of its own)
}
LOG_DIR = REPO / ".bench"


def free_port() -> int:
    """A loopback port nothing listens on now. Each run's services get their own: with fixed
    ports a second bench run's service fails to bind, and the first run's health check then
    answers for it (seen once: a measurement of 0 of 200 offers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _infra(command: str, check: bool = True) -> int:
    PRIVATE_INFRA_DIR.mkdir(parents=True, exist_ok=True)
    cache = PRIVATE_INFRA_DIR / "cache"
    if not cache.exists():  # the jars and the FerretDB binary `make infra-up` fetched
        cache.symlink_to(REPO / ".infra" / "cache")
    env = {**os.environ, "INFRA_DIR": str(PRIVATE_INFRA_DIR), **PRIVATE_PORTS}
    done = subprocess.run(
        [sys.executable, str(REPO / "infra" / "infra.py"), command],
        env=env,
        check=check,
        stdout=None if check else subprocess.DEVNULL,
    )
    return done.returncode


def private_infra_up() -> bool:
    """Starts the bench's own infra unless it runs already; True when this call started it
    (so that a run stops only what it started, not another run's infra under its feet)."""
    INFRA.kafka = f"127.0.0.1:{PRIVATE_PORTS['KAFKA_PORT']}"
    INFRA.mongodb_url = f"mongodb://127.0.0.1:{PRIVATE_PORTS['MONGO_PORT']}"
    if _infra("status", check=False) == 0:
        say(f"the bench's own Kafka and FerretDB run already ({PRIVATE_INFRA_DIR}); left running")
        return False
    say(f"starting the bench's own Kafka and FerretDB (on PostgreSQL) under {PRIVATE_INFRA_DIR}")
    _infra("up")
    return True


def private_infra_down() -> None:
    say("stopping the bench's own Kafka, FerretDB and PostgreSQL")
    _infra("down")


def add_infra_options(parser: argparse.ArgumentParser) -> None:
    """The options every bench script takes: where to run, and what to keep afterwards."""
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the bench databases and topics (and its own infra)",
    )
    parser.add_argument(
        "--shared-infra",
        action="store_true",
        help="use KAFKA_BOOTSTRAP_SERVERS/MONGODB_URL (default: a Kafka and FerretDB of the "
        "bench's own, started and stopped by the run)",
    )


def run_with_infra(args: argparse.Namespace, work: Coroutine[Any, Any, object]) -> None:
    """Runs `work` on the bench's own infra or the shared one, and then, unless --keep,
    deletes the topics the run made (on the shared broker they would pile up: 242 bench
    topics of 726 partitions were found on a developer's broker, 2026-12-06)."""
    if args.shared_infra:
        asyncio.run(_then_delete_topics(work, args.keep))
        return
    started = private_infra_up()
    try:
        asyncio.run(_then_delete_topics(work, args.keep))
    finally:
        if started and not args.keep:
            private_infra_down()


async def _then_delete_topics(work: Coroutine[Any, Any, object], keep: bool) -> None:
    try:
        await work
    finally:
        if not keep and RUN_TAGS:
            try:
                deleted = await delete_topics_of(RUN_TAGS)
                say(f"deleted the run's {deleted} topic(s)")
            except (KafkaError, OSError) as error:
                say(f"could not delete the run's topics ({error}); they stay on the broker")


# The ids of this process's runs. Every topic a run makes has one in its name: its services'
# internal topics (through their group ids), the plain pipelines' and the sweeps' topics.
RUN_TAGS: set[str] = set()


def run_id() -> str:
    tag = f"{datetime.now(UTC):%m%d%H%M%S}{uuid.uuid4().hex[:4]}"
    RUN_TAGS.add(tag)
    return tag


async def delete_topics_of(tags: Collection[str]) -> int:
    """Deletes every topic whose name holds one of `tags`; returns how many."""
    admin = AIOKafkaAdminClient(**client_options(INFRA.kafka))
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if any(tag in name for tag in tags)]
        if names:
            await admin.delete_topics(names)
        return len(names)
    finally:
        await admin.close()


def say(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def mongo() -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(INFRA.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=10000)


def machine() -> str:
    cores = os.cpu_count()
    try:
        with open("/proc/meminfo") as meminfo:
            kb = int(meminfo.readline().split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        memory = "?"
    return f"{cores} cores, {memory}, Python {platform.python_version()}, {platform.system()}"


# --- service processes ----------------------------------------------------------------------


@dataclass
class Services:
    """The services of one benchmark phase, each with a database and a group of its own."""

    tag: str
    names: Sequence[str]
    extra_env: dict[str, str] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    processes: list[ServiceProcess] = field(default_factory=list)

    def database(self, name: str) -> str:
        return self.databases.get(name, f"bench_{name}_{self.tag}")

    def group(self, name: str) -> str:
        """The service's consumer group (its internal topic is named after it)."""
        return f"bench-{name}-{self.tag}"

    async def __aenter__(self) -> Services:
        say(f"{self.tag}: starting {', '.join(self.names)} from {code_state()}")
        try:
            for name in self.names:
                await start_at_the_end(INFRA.kafka, name, self.group(name))
                self.processes.append(self._started(name))
            for index in range(len(self.processes)):
                await self._healthy(index)
        except BaseException:
            # None left running: one would go on handling the next run's commands (seen:
            # every offer of a later latency run extended twice, by two offer_services).
            await self.__aexit__()
            raise
        # Let the consumer groups settle (the first assignment takes a moment).
        await asyncio.sleep(3)
        return self

    def _started(self, name: str) -> ServiceProcess:
        port = free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": INFRA.kafka,
            "MONGODB_URL": INFRA.mongodb_url,
            "MONGODB_DATABASE": self.database(name),
            "KAFKA_GROUP_ID": self.group(name),
            "HTTP_PORT": str(port),
            **self.extra_env,
        }
        process = ServiceProcess(name, port, env, LOG_DIR / f"{self.tag}-{name}.log")
        process.start()
        return process

    async def _healthy(self, index: int, attempts: int = 3) -> None:
        """Waits for the index-th process to be healthy; starts it again on another port if
        its port was taken between free_port() and its bind (seen once in a run of every
        bench)."""
        for attempt in range(attempts):
            process = self.processes[index]
            try:
                await asyncio.to_thread(process.wait_healthy, 90)
                return
            except RuntimeError as error:
                if "address already in use" not in str(error) or attempt == attempts - 1:
                    raise
                say(f"{process.name}: port {process.port} was taken meanwhile; another one")
                self.processes[index] = self._started(process.name)

    async def __aexit__(self, *_: object) -> None:
        for process in self.processes:
            await asyncio.to_thread(process.stop)

    async def _samples(self, name: str) -> list[tuple[str, Sample]]:
        """Every sample whose name starts with `name`, of each process's /metrics, read
        with prometheus_client's own parser."""
        out = []
        for process in self.processes:
            text = await asyncio.to_thread(_get, f"{process.url}/metrics")
            for family in text_string_to_metric_families(text):
                out += [(process.name, s) for s in family.samples if s.name.startswith(name)]
        return out

    async def handling_ms(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(service, message type) -> (records, mean handling ms), from each /metrics."""
        sums: dict[tuple[str, str], float] = defaultdict(float)
        counts: dict[tuple[str, str], float] = defaultdict(float)
        for service, sample in await self._samples("offers_handling_seconds"):
            key = (service, sample.labels.get("type", ""))
            if sample.name == "offers_handling_seconds_sum":
                sums[key] += sample.value
            elif sample.name == "offers_handling_seconds_count":
                counts[key] += sample.value
        return {key: (int(n), 1000 * sums[key] / n) for key, n in counts.items() if n}

    async def batch_steps(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(service, step) -> (batches, seconds in all) so far, from each /metrics, and
        (service, "records") -> (batches, records in all)."""
        out: dict[tuple[str, str], tuple[float, float]] = {}
        for prefix, label in (("offers_batch_seconds", None), ("offers_batch_records", "records")):
            for service, sample in await self._samples(prefix):
                key = (service, label or sample.labels.get("step", ""))
                count, total = out.get(key, (0.0, 0.0))
                if sample.name.endswith("_count"):
                    out[key] = (count + sample.value, total)
                elif sample.name.endswith("_sum"):
                    out[key] = (count, total + sample.value)
        return out

    async def database_commands(self) -> Counter[tuple[str, str, str]]:
        """(service, command, collection) -> commands sent so far, from each /metrics."""
        out: Counter[tuple[str, str, str]] = Counter()
        for service, sample in await self._samples("offers_database_commands_total"):
            labels = sample.labels
            out[(service, labels["command"], labels["collection"])] += int(sample.value)
        return out


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, OSError):
        return ""


# --- commands -------------------------------------------------------------------------------


def extend_offer(tag: str, n: int, terms: dict[str, Any]) -> dict[str, Any]:
    client = f"bench-client-{tag}-{n % 97}"
    return {
        "type": "ExtendOffer",
        "command_id": str(uuid.uuid4()),
        "actor_id": client,
        "offer_id": f"bench-offer-{tag}-{n}",
        "job_id": f"bench-job-{tag}-{n}",
        "proposal_id": f"bench-prop-{tag}-{n}",
        "client_id": client,
        "freelancer_id": f"bench-free-{tag}-{n}",
        "terms": terms,
    }


def today() -> date:
    return datetime.now(UTC).date()


# --- figures --------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [f"\n### {title}\n", line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out) + "\n"


def code_state() -> str:
    """The commit the services run from, and whether their code has uncommitted changes
    (the services run from the working tree, which others may be editing meanwhile)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "?"
    diff = git("diff", "HEAD", "--", "services", "contracts")
    if not diff:
        return f"code {head}"
    digest = hashlib.sha1(diff.encode()).hexdigest()[:8]
    return f"code {head} + uncommitted changes in services/contracts (diff {digest})"


def stamp() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}; {code_state()}"


async def drop_databases(names: Sequence[str]) -> None:
    client = mongo()
    try:
        existing = set(await client.list_database_names())
        for name in names:
            if name in existing:
                await client.drop_database(name)
    finally:
        await client.close()
