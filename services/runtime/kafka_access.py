"""How every client of the platform reaches Kafka: the bootstrap servers and, on a secured
cluster, TLS (a CA file, an optional client certificate) and SASL (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512), from the environment.

The services, the CLI, the benchmarks, the fault scripts and the tests build their clients
from `client_options`, so one set of variables (README, "Settings") reaches all of them."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PROBE_TIMEOUT_MS = 10_000


class KafkaAccessError(ValueError):
    """The Kafka settings contradict each other or name a file that is not there."""


class KafkaRefused(RuntimeError):
    """Kafka answered, but would not take this client: wrong credentials, a mechanism it does
    not enable, or a certificate that does not verify. Waiting will not change it."""


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """How to connect; the bootstrap servers are given beside it (KAFKA_BOOTSTRAP_SERVERS, or
    the address a test or benchmark chose)."""

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_file: str | None = None
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None
    ssl_key_password: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> KafkaSecurity:
        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        sasl = get("KAFKA_SASL_MECHANISM")
        protocol = get("KAFKA_SECURITY_PROTOCOL") or ("SASL_SSL" if sasl else "PLAINTEXT")
        access = cls(
            security_protocol=protocol.upper(),
            sasl_mechanism=None if sasl is None else sasl.upper(),
            sasl_username=get("KAFKA_SASL_USERNAME"),
            sasl_password=environ.get("KAFKA_SASL_PASSWORD") or None,
            ssl_ca_file=get("KAFKA_SSL_CA_FILE"),
            ssl_cert_file=get("KAFKA_SSL_CERT_FILE"),
            ssl_key_file=get("KAFKA_SSL_KEY_FILE"),
            ssl_key_password=environ.get("KAFKA_SSL_KEY_PASSWORD") or None,
        )
        access.check()
        return access

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def check(self) -> None:
        """Settings that cannot work are refused before anything connects, naming the fix."""
        if self.security_protocol not in PROTOCOLS:
            raise KafkaAccessError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol!r} is not one of "
                f"{', '.join(PROTOCOLS)}"
            )
        if self.uses_sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise KafkaAccessError(
                    f"KAFKA_SASL_MECHANISM={self.sasl_mechanism!r}: {self.security_protocol} "
                    f"needs one of {', '.join(MECHANISMS)}"
                )
            if not self.sasl_username or not self.sasl_password:
                raise KafkaAccessError(
                    f"{self.security_protocol} with {self.sasl_mechanism} needs "
                    "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
                )
        elif self.sasl_mechanism or self.sasl_username:
            raise KafkaAccessError(
                f"SASL settings are given but KAFKA_SECURITY_PROTOCOL={self.security_protocol}: "
                "set it to SASL_SSL (or SASL_PLAINTEXT), or unset the SASL settings"
            )
        tls_files = (self.ssl_ca_file, self.ssl_cert_file, self.ssl_key_file)
        if not self.uses_tls and any(tls_files):
            raise KafkaAccessError(
                f"TLS files are given but KAFKA_SECURITY_PROTOCOL={self.security_protocol}: "
                "set it to SSL or SASL_SSL"
            )
        if bool(self.ssl_cert_file) != bool(self.ssl_key_file):
            raise KafkaAccessError(
                "a client certificate needs both KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE"
            )
        for name, path in zip(
            ("KAFKA_SSL_CA_FILE", "KAFKA_SSL_CERT_FILE", "KAFKA_SSL_KEY_FILE"),
            tls_files,
            strict=True,
        ):
            if path is not None and not Path(path).is_file():
                raise KafkaAccessError(f"{name}={path}: no such file")

    def describe(self, bootstrap: str) -> str:
        """Where and how, for log lines: never the password."""
        how = self.security_protocol
        if self.uses_sasl:
            how += f", {self.sasl_mechanism} as {self.sasl_username!r}"
        return f"{bootstrap} ({how})"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        # Without a CA file, the system's trusted CAs (a managed Kafka's public certificate).
        return _ssl_context(
            self.ssl_ca_file, self.ssl_cert_file, self.ssl_key_file, self.ssl_key_password
        )

    def client_options(self, bootstrap: str) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password,
            }
        return options

    def faststream_security(self) -> BaseSecurity | None:
        """The same, as FastStream's KafkaBroker takes it (and AsyncAPI documents it)."""
        context = self.ssl_context()
        if not self.uses_sasl:
            return BaseSecurity(ssl_context=context) if self.uses_tls else None
        kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256}.get(
            self.sasl_mechanism or "", SASLScram512
        )
        assert self.sasl_username is not None and self.sasl_password is not None  # check()
        return kind(
            self.sasl_username, self.sasl_password, ssl_context=context, use_ssl=self.uses_tls
        )

    async def probe(self, bootstrap: str) -> None:
        """Connects to the first bootstrap server that answers, as the clients would.

        aiokafka's clients log why a connection failed and then raise a bare "Unable to
        bootstrap"; this keeps the reason, so that a refusal (which waiting will not mend)
        is told apart from an outage. Raises KafkaRefused, or KafkaError/OSError to wait."""
        last: BaseException | None = None
        for host, port in _hosts(bootstrap):
            try:
                connection = await create_conn(
                    host,
                    port,
                    client_id="probe",
                    request_timeout_ms=PROBE_TIMEOUT_MS,
                    ssl_context=self.ssl_context(),
                    security_protocol=self.security_protocol,
                    sasl_mechanism=self.sasl_mechanism,
                    sasl_plain_username=self.sasl_username,
                    sasl_plain_password=self.sasl_password,
                )
            except (
                SaslAuthenticationFailed,
                AuthenticationFailedError,
                UnsupportedSaslMechanismError,
            ) as error:
                reason = _first_line(error)
                raise KafkaRefused(
                    f"Kafka at {self.describe(bootstrap)} refused the credentials ({reason}): "
                    "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
                ) from None
            except ssl.SSLCertVerificationError as error:
                raise KafkaRefused(
                    f"Kafka at {self.describe(bootstrap)} presented a certificate this client "
                    f"does not trust ({error.verify_message}): set KAFKA_SSL_CA_FILE to the CA "
                    "that signed it"
                ) from None
            except (TimeoutError, KafkaError, OSError) as error:
                last = error
                continue
            connection.close()
            return
        assert last is not None
        raise last


def _hosts(bootstrap_servers: str) -> list[tuple[str, int]]:
    hosts = []
    for entry in bootstrap_servers.split(","):
        host, _, port = entry.strip().rpartition(":")
        hosts.append((host.strip("[]") or entry.strip(), int(port) if port.isdigit() else 9092))
    return hosts


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:200]


@cache
def _ssl_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None, key_password: str | None
) -> ssl.SSLContext:
    # One context per set of files: each client would otherwise read and parse them again.
    context: ssl.SSLContext = create_ssl_context(
        cafile=ca_file, certfile=cert_file, keyfile=key_file, password=key_password
    )
    return context


@cache
def security_from_env() -> KafkaSecurity:
    """The environment's Kafka security settings, read once per process."""
    return KafkaSecurity.from_env()


def client_options(bootstrap: str) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client of `bootstrap`, secured as the environment
    says: what the CLI, the benchmarks, the fault scripts and the tests build clients with."""
    return security_from_env().client_options(bootstrap)
