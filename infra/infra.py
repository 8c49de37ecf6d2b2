"""Local infrastructure for development and tests: Kafka and a MongoDB-compatible database.

    python3 infra/infra.py up | down | status
    python3 infra/infra.py start | stop | restart kafka|ferretdb   (one component; fault tests)

Why this exists: the machines this project runs on (developers' and CI's) have no Docker, so the
services are run as plain background processes from artefacts fetched through the package
registries that are reachable: the Kafka broker's jars from Maven Central (resolved by `mvn` from
infra/kafka/pom.xml) and FerretDB (MongoDB wire protocol on SQLite) built by `go` from the Go module
proxy (infra/ferretdb/main.go embeds it). The first `up` provisions everything into a cache; later
`up`s start in seconds.

Everything lives under $INFRA_DIR (default: <repo>/.infra): cache/ (jars, binary, Go and Maven
caches), data/{kafka,ferretdb}, logs/, run/ (PID files and a lock file). `rm -rf .infra` resets
everything. Ports: $KAFKA_PORT (9092), $KAFKA_CONTROLLER_PORT (9093), $MONGO_PORT (27017).

Standard library only: this runs before any virtualenv exists. `status` exits 0 only when both
services run and answer.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
FERRETDB_VERSION = "1.24.2"
MIN_JAVA = 17
MIN_GO = (1, 24)  # infra/ferretdb/go.mod says `go 1.24`

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
INFRA_SRC = REPO / "infra"
INFRA_DIR = Path(os.environ.get("INFRA_DIR") or REPO / ".infra").resolve()
# The downloads and builds, shareable between infra folders (the tests' own, infra/test.env).
CACHE_DIR = Path(os.environ.get("INFRA_CACHE_DIR") or INFRA_DIR / "cache").resolve()
DATA_DIR = INFRA_DIR / "data"
LOG_DIR = INFRA_DIR / "logs"
RUN_DIR = INFRA_DIR / "run"
CONF_DIR = INFRA_DIR / "conf"

KAFKA_JARS = CACHE_DIR / "kafka" / "jars"
KAFKA_MARKER = CACHE_DIR / "kafka" / "VERSION"
KAFKA_DATA = DATA_DIR / "kafka"
KAFKA_CONFIG = CONF_DIR / "kafka-server.properties"
FERRETDB_BIN = CACHE_DIR / "ferretdb" / "bin" / "ferretdb"
FERRETDB_MARKER = CACHE_DIR / "ferretdb" / "VERSION"
FERRETDB_DATA = DATA_DIR / "ferretdb"
GO_CACHE = CACHE_DIR / "go"

PROGRESS_EVERY_S = 10.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 15


class InfraError(Exception):
    """A failure the user can act on: main() prints it without a traceback, as one line (plus a
    log excerpt when a service died while starting)."""


def say(message: str) -> None:
    print(f"[infra] {message}", flush=True)


def rel(path: Path) -> str:
    """Show paths relative to the repo when possible: shorter, and copy-pasteable from there."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO))
    return str(path)


def env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise InfraError(f"{name}={raw!r} is not a TCP port number; unset it or set e.g. {default}")
    return int(raw)


# --------------------------------------------------------------------------- processes and ports


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_alive(pid: int) -> bool:
    """True unless gone or a zombie (services get reparented, maybe to a non-reaping init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may itself contain spaces.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same options the services use, so a port lingering in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def port_owner(port: int) -> str:
    """Best effort 'pid N: command' of the process listening on a port (via /proc), else ''."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                fields = row.split()
                # fields[1] is the local address as HEX_IP:HEX_PORT; state 0A is LISTEN.
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(fields[9])
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in targets:
                    command = " ".join(cmdline(int(proc.name)))[:80]
                    return f"pid {proc.name}: {command}"
    return ""


def run_logged(
    command: list[str],
    log_path: Path,
    what: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Run a provisioning tool with its full output in a log file, summarising progress here."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    next_report = started + PROGRESS_EVERY_S
    with log_path.open("wb") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
            )
        except OSError as exc:
            raise InfraError(f"{what} failed: cannot run {command[0]}: {exc}") from exc
        while proc.poll() is None:
            time.sleep(0.5)
            if time.monotonic() >= next_report:
                next_report += PROGRESS_EVERY_S
                last = log_tail(log_path, 1).strip()[:90]
                say(f"  ... {time.monotonic() - started:.0f}s, {what}: {last}")
    if proc.returncode != 0:
        last = log_tail(log_path, 1).strip()[:120]
        raise InfraError(f"{what} failed ({last}); full log: {rel(log_path)}")


def fingerprint(*parts: str | Path) -> str:
    """Hash of versions and source files, so that changing any of them re-provisions."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes() if isinstance(part, Path) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def is_provisioned(marker: Path, expected: str, artefact: Path) -> bool:
    return artefact.exists() and marker.is_file() and marker.read_text().strip() == expected


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise InfraError(f"{name} not found on PATH: {hint}")
    return path


# --------------------------------------------------------------------------- protocol probes


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def kafka_has_broker(port: int) -> bool:
    """Metadata request (v4: the oldest Kafka 4 accepts) that lists at least one live broker.

    A fenced broker (still starting) is not listed, so this is stronger than a TCP check.
    """
    client_id = b"infra.py"
    # Header v1: api_key=3 (Metadata), api_version=4, correlation_id, client_id.
    # Body: topics=[] (none; we only want brokers), allow_auto_topic_creation=false.
    request = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id + struct.pack(">i?", 0, 0)
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", recv_exact(sock, 4))
            response = recv_exact(sock, size)
        # correlation_id, throttle_time_ms, brokers array length.
        correlation_id, _throttle, broker_count = struct.unpack_from(">iii", response)
    except (OSError, struct.error):
        return False
    return bool(correlation_id == 1 and broker_count > 0)


def bson_ping() -> bytes:
    """BSON for {ping: 1, $db: "admin"}, just enough encoding for this one document."""
    elements = b"\x10ping\x00" + struct.pack("<i", 1)  # 0x10: int32
    elements += b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"  # 0x02: string
    return struct.pack("<i", 4 + len(elements) + 1) + elements + b"\x00"


def mongo_ping(port: int) -> bool:
    """MongoDB OP_MSG ping; True when the reply contains ok: 1.0."""
    body = struct.pack("<I", 0) + b"\x00" + bson_ping()  # flagBits, section kind 0, document
    header = struct.pack("<iiii", 16 + len(body), 1, 0, 2013)  # length, requestID, responseTo, op
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(header + body)
            (size,) = struct.unpack("<i", recv_exact(sock, 4))
            reply = recv_exact(sock, size - 4)
    except (OSError, struct.error):
        return False
    # The reply to ping is {ok: 1.0}; look for the double element "ok" rather than parse all BSON.
    found = reply.find(b"\x01ok\x00")
    if found < 0:
        return False
    (ok,) = struct.unpack_from("<d", reply, found + 4)
    return bool(ok == 1.0)


# --------------------------------------------------------------------------- services


@dataclass(frozen=True)
class Ports:
    kafka: int
    kafka_controller: int
    mongo: int

    @classmethod
    def from_env(cls) -> Ports:
        return cls(
            kafka=env_port("KAFKA_PORT", 9092),
            kafka_controller=env_port("KAFKA_CONTROLLER_PORT", 9093),
            mongo=env_port("MONGO_PORT", 27017),
        )


@dataclass(frozen=True)
class Service:
    name: str
    ports: dict[str, int]  # environment variable that overrides it -> port
    label: str
    address: str
    note: str
    start_timeout_s: float
    provision: Callable[[], None]
    prepare: Callable[[], None]
    command: Callable[[], list[str]]
    marker: str  # text in /proc/PID/cmdline that proves a PID is ours
    is_ready: Callable[[], bool]

    @property
    def endpoint(self) -> str:
        return f"{self.label:<9} {self.address}  ({self.note})"

    @property
    def pid_file(self) -> Path:
        return RUN_DIR / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return LOG_DIR / f"{self.name}.log"

    def running_pid(self) -> int | None:
        """PID from our PID file if that process is alive and still ours; drops stale PID files."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if is_alive(pid) and self.marker in " ".join(cmdline(pid)):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None


# Kafka -----------------------------------------------------------------------------------------

SERVER_PROPERTIES = """\
# Generated by infra/infra.py on every `up`; edit the template there, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={host}:{controller_port}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir}
# Single node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests want consumer groups to start at once.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
# Several partitions, so that choosing message keys (per aggregate) matters in tests too.
num.partitions=3
"""


def java_major(java: str) -> int:
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    if not found:
        return 0
    major = int(found.group(1))
    # Java 8 and older report "1.8.0_x".
    return int(found.group(2) or 0) if major == 1 else major


@functools.cache  # `java -version` takes a moment; up asks several times
def require_java() -> str:
    hint = f"install OpenJDK {MIN_JAVA}+ (apt-get install openjdk-{MIN_JAVA}-jre-headless)"
    java = require_tool("java", hint)
    major = java_major(java)
    if major < MIN_JAVA:
        raise InfraError(
            f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+, but {java} is Java "
            f"{major or '?'}: install OpenJDK {MIN_JAVA}+ and put it first on PATH"
        )
    return java


def kafka_fingerprint() -> str:
    return fingerprint(KAFKA_VERSION, LOG4J_VERSION, INFRA_SRC / "kafka" / "pom.xml")


def provision_kafka() -> None:
    require_java()  # needed to run Kafka even when nothing has to be downloaded
    if is_provisioned(KAFKA_MARKER, kafka_fingerprint(), KAFKA_JARS):
        return
    mvn = require_tool("mvn", "install Maven 3.8+ (apt-get install maven)")
    say(f"resolving Kafka {KAFKA_VERSION} jars from Maven Central (first run only, < 1 min)...")
    staging = KAFKA_JARS.with_name("jars.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    run_logged(
        [
            mvn,
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(INFRA_SRC / "kafka" / "pom.xml"),
            f"-Dmaven.repo.local={CACHE_DIR / 'm2'}",
            f"-Dkafka.version={KAFKA_VERSION}",
            f"-Dlog4j.version={LOG4J_VERSION}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        LOG_DIR / "kafka-provision.log",
        f"resolving Kafka {KAFKA_VERSION} jars",
    )
    # Swap in complete results only, so an interrupted run never looks provisioned.
    shutil.rmtree(KAFKA_JARS, ignore_errors=True)
    staging.rename(KAFKA_JARS)
    KAFKA_MARKER.write_text(kafka_fingerprint() + "\n")
    say(f"Kafka jars ready in {rel(KAFKA_JARS)}")


def prepare_kafka(ports: Ports) -> None:
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    KAFKA_CONFIG.write_text(
        SERVER_PROPERTIES.format(
            host=HOST, port=ports.kafka, controller_port=ports.kafka_controller, data_dir=KAFKA_DATA
        )
    )
    if (KAFKA_DATA / "meta.properties").exists():
        return
    say("formatting Kafka storage (first start only)...")
    KAFKA_DATA.mkdir(parents=True, exist_ok=True)
    # Kafka cluster IDs are 16 random bytes, URL-safe base64 without padding (22 characters).
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    run_logged(
        [
            require_java(),
            "-cp",
            f"{KAFKA_JARS}/*",
            f"-Dlog4j2.configurationFile={log4j_config()}",
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(KAFKA_CONFIG),
            "--cluster-id",
            cluster_id,
            "--standalone",
            "--ignore-formatted",
        ],
        LOG_DIR / "kafka-format.log",
        "formatting Kafka storage",
    )


def log4j_config() -> Path:
    return INFRA_SRC / "kafka" / "log4j2.properties"


def kafka_command() -> list[str]:
    return [
        require_java(),
        "-Xms128m",
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j_config()}",
        "-cp",
        f"{KAFKA_JARS}/*",
        "kafka.Kafka",
        str(KAFKA_CONFIG),
    ]


# FerretDB --------------------------------------------------------------------------------------

FERRETDB_SOURCES = ("main.go", "go.mod", "go.sum")


def go_version(go: str, env: dict[str, str]) -> tuple[int, int]:
    result = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, env=env, check=False
    )
    found = re.match(r"go(\d+)\.(\d+)", result.stdout.strip())
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def go_env() -> dict[str, str]:
    """Keep every Go cache under .infra so that nothing outside the repo is needed or touched."""
    return {
        **os.environ,
        "GOPATH": str(GO_CACHE / "path"),
        "GOMODCACHE": str(GO_CACHE / "mod"),
        "GOCACHE": str(GO_CACHE / "build"),
        # -modcacherw: the module cache is read-only by default, which breaks `rm -rf .infra`.
        # -buildvcs=false: the build directory sits inside this repo's git work tree.
        "GOFLAGS": "-mod=mod -modcacherw -buildvcs=false",
        "GOTOOLCHAIN": "local",  # never try to download another Go toolchain
        "CGO_ENABLED": "0",  # FerretDB's SQLite is pure Go (modernc.org/sqlite)
    }


def ferretdb_fingerprint() -> str:
    sources = INFRA_SRC / "ferretdb"
    return fingerprint(FERRETDB_VERSION, *(sources / name for name in FERRETDB_SOURCES))


def provision_ferretdb() -> None:
    if is_provisioned(FERRETDB_MARKER, ferretdb_fingerprint(), FERRETDB_BIN):
        return
    go = require_tool("go", "install Go 1.24+ (https://go.dev/doc/install) and put it on PATH")
    env = go_env()
    if go_version(go, env) < MIN_GO:
        raise InfraError(
            f"FerretDB {FERRETDB_VERSION} needs Go {MIN_GO[0]}.{MIN_GO[1]}+; "
            f"{go} is older: install a newer Go and put it first on PATH"
        )
    say(f"building FerretDB {FERRETDB_VERSION} with go (first run only, ~1 min)...")
    # Build from a copy: with -mod=mod, go may rewrite go.mod/go.sum, and infra/ stays untouched.
    build_dir = CACHE_DIR / "ferretdb" / "src"
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    for name in FERRETDB_SOURCES:
        shutil.copy2(INFRA_SRC / "ferretdb" / name, build_dir / name)
    staging = FERRETDB_BIN.with_name("ferretdb.tmp")
    staging.parent.mkdir(parents=True, exist_ok=True)
    # -v prints each package as it compiles: the progress lines show the build is alive.
    run_logged(
        [go, "build", "-v", "-trimpath", "-o", str(staging), "."],
        LOG_DIR / "ferretdb-build.log",
        f"building FerretDB {FERRETDB_VERSION}",
        env=env,
        cwd=build_dir,
    )
    staging.replace(FERRETDB_BIN)
    FERRETDB_MARKER.write_text(ferretdb_fingerprint() + "\n")
    say(f"FerretDB binary ready: {rel(FERRETDB_BIN)}")


def prepare_ferretdb() -> None:
    FERRETDB_DATA.mkdir(parents=True, exist_ok=True)


def ferretdb_command(port: int) -> list[str]:
    return [str(FERRETDB_BIN), f"--listen-addr={HOST}:{port}", f"--sqlite-dir={FERRETDB_DATA}"]


def make_services(ports: Ports) -> list[Service]:
    return [
        Service(
            name="kafka",
            ports={"KAFKA_PORT": ports.kafka, "KAFKA_CONTROLLER_PORT": ports.kafka_controller},
            label="Kafka",
            address=f"{HOST}:{ports.kafka}",
            note="KAFKA_BOOTSTRAP_SERVERS",
            start_timeout_s=120,
            provision=provision_kafka,
            prepare=lambda: prepare_kafka(ports),
            command=kafka_command,
            marker=f"kafka.Kafka {KAFKA_CONFIG}",
            is_ready=lambda: kafka_has_broker(ports.kafka),
        ),
        Service(
            name="ferretdb",
            ports={"MONGO_PORT": ports.mongo},
            label="MongoDB",
            address=f"mongodb://{HOST}:{ports.mongo}",
            note=f"FerretDB {FERRETDB_VERSION}, SQLite",
            start_timeout_s=30,
            provision=provision_ferretdb,
            prepare=prepare_ferretdb,
            command=lambda: ferretdb_command(ports.mongo),
            marker=str(FERRETDB_BIN),
            is_ready=lambda: mongo_ping(ports.mongo),
        ),
    ]


# --------------------------------------------------------------------------- commands


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Serialise up/down between callers (say, a test fixture and a make target)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with (RUN_DIR / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another infra.py up/down is running; waiting for it...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def check_ports_free(service: Service) -> None:
    for env_name, port in service.ports.items():
        if not port_is_free(port):
            owner = port_owner(port)
            by = f" ({owner})" if owner else ""
            raise InfraError(
                f"port {port} is already in use by another process{by}, not started by infra: "
                f"stop it, or set {env_name} to a free port"
            )


def start(service: Service) -> subprocess.Popen[bytes]:
    check_ports_free(service)
    service.prepare()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    if service.log_file.exists():  # keep one previous run's log
        service.log_file.replace(service.log_file.with_name(service.log_file.name + ".1"))
    with service.log_file.open("wb") as log:
        # A new session: the service outlives `up` and ignores Ctrl+C sent to this terminal.
        command = service.command()
        try:
            proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=INFRA_DIR,
                start_new_session=True,
            )
        except OSError as exc:
            raise InfraError(f"cannot start {service.name} ({command[0]}): {exc}") from exc
    service.pid_file.write_text(f"{proc.pid}\n")
    return proc


def wait_ready(service: Service, proc: subprocess.Popen[bytes] | None, pid: int) -> None:
    deadline = time.monotonic() + service.start_timeout_s
    while not service.is_ready():
        exited = proc.poll() is not None if proc else not is_alive(pid)
        if exited:
            service.pid_file.unlink(missing_ok=True)
            raise InfraError(
                f"{service.name} exited during start; last lines of "
                f"{rel(service.log_file)}:\n{log_tail(service.log_file)}"
            )
        if time.monotonic() > deadline:
            raise InfraError(
                f"{service.name} did not answer within {service.start_timeout_s:.0f}s; "
                f"last lines of "
                f"{rel(service.log_file)}:\n{log_tail(service.log_file)}"
            )
        time.sleep(0.3)


def cmd_up(ports: Ports, only: str | None = None) -> None:
    """Starts every component (or only the one named), idempotently, and waits until ready."""
    services = [s for s in make_services(ports) if only is None or s.name == only]
    began = time.monotonic()
    with locked():
        to_start = [service for service in services if service.running_pid() is None]
        # Check everything that can fail before starting anything, so a failure leaves no
        # half-started set behind: ports first (cheap), then tools and provisioning.
        for service in to_start:
            check_ports_free(service)
        for service in to_start:
            service.provision()
        waiting: list[tuple[Service, subprocess.Popen[bytes] | None, int]] = []
        launched: list[Service] = []
        try:
            for service in services:  # start all, then wait: the services boot in parallel
                pid = service.running_pid()
                if pid is not None:
                    say(f"{service.name} already running (pid {pid})")
                    waiting.append((service, None, pid))
                else:
                    new = start(service)
                    launched.append(service)
                    say(f"started {service.name} (pid {new.pid}), log: {rel(service.log_file)}")
                    waiting.append((service, new, new.pid))
            for service, proc, pid in waiting:
                wait_ready(service, proc, pid)
        except (InfraError, KeyboardInterrupt):
            # Leave things as they were rather than half started.
            for service in reversed(launched):
                stop(service)
            raise
    say(f"ready in {time.monotonic() - began:.1f}s")
    for service in services:
        print(f"  {service.endpoint}")


def stop(service: Service) -> None:
    pid = service.running_pid()
    if pid is None:
        say(f"{service.name} not running")
        return
    os.kill(pid, signal.SIGTERM)  # both shut down cleanly on SIGTERM
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if is_alive(pid):
        say(f"{service.name} (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    service.pid_file.unlink(missing_ok=True)
    say(f"stopped {service.name} (pid {pid})")


def cmd_down(ports: Ports, only: str | None = None) -> None:
    with locked():
        # Stop in reverse start order; each waits, as the next `up` needs the ports again.
        for service in reversed(make_services(ports)):
            if only is None or service.name == only:
                stop(service)


def cmd_restart(ports: Ports, name: str) -> None:
    """Stops one component (SIGTERM, as an operator would) and starts it again on the same data:
    what the fault scripts (`python -m faults`) do to Kafka or the database mid-stream."""
    began = time.monotonic()
    cmd_down(ports, name)
    cmd_up(ports, name)
    say(f"restarted {name} in {time.monotonic() - began:.1f}s")


def cmd_status(ports: Ports) -> bool:
    all_up = True
    for service in make_services(ports):
        pid = service.running_pid()
        if pid is None:
            all_up = False
            print(f"{service.name:<9} stopped")
            continue
        ready = service.is_ready()
        all_up = all_up and ready
        state = "running" if ready else "running, NOT answering"
        print(f"{service.name:<9} {state} (pid {pid})  {service.address}")
    print(f"(infra dir: {INFRA_DIR})")
    return all_up


COMPONENTS = ("kafka", "ferretdb")


def usage() -> NoReturn:
    print(
        f"usage: {sys.argv[0]} up|down|status, or start|stop|restart {'|'.join(COMPONENTS)}",
        file=sys.stderr,
    )
    sys.exit(2)


def main(argv: list[str]) -> int:
    whole = len(argv) == 1 and argv[0] in ("up", "down", "status")
    one = len(argv) == 2 and argv[0] in ("start", "stop", "restart") and argv[1] in COMPONENTS
    if not (whole or one):
        usage()
    try:
        ports = Ports.from_env()
        only = argv[1] if one else None
        if argv[0] in ("up", "start"):
            cmd_up(ports, only)
        elif argv[0] in ("down", "stop"):
            cmd_down(ports, only)
        elif argv[0] == "restart":
            cmd_restart(ports, argv[1])
        else:
            return 0 if cmd_status(ports) else 1
    except InfraError as exc:
        print(f"[infra] error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[infra] interrupted; `down` stops whatever was started", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
