"""The Kafka security settings: what each combination gives the clients, and settings that
cannot work refused before anything connects, naming the variable to fix."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from services.runtime.kafka_access import KafkaAccessError, KafkaSecurity


def test_plaintext_by_default() -> None:
    security = KafkaSecurity.from_env({})
    assert security.client_options("h:1") == {
        "bootstrap_servers": "h:1",
        "security_protocol": "PLAINTEXT",
    }
    assert security.faststream_security() is None


def test_a_sasl_mechanism_alone_means_sasl_over_tls() -> None:
    security = KafkaSecurity.from_env(
        {
            "KAFKA_SASL_MECHANISM": "scram-sha-512",
            "KAFKA_SASL_USERNAME": "alice",
            "KAFKA_SASL_PASSWORD": "s3cret",
        }
    )
    options = security.client_options("h:1")
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("alice", "s3cret")
    assert options["ssl_context"] is not None  # the system's CAs when no CA file is given
    assert isinstance(security.faststream_security(), SASLScram512)


@pytest.mark.parametrize(
    ("mechanism", "kind"),
    [("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512)],
)
def test_each_mechanism_reaches_the_broker_settings(mechanism: str, kind: type) -> None:
    security = KafkaSecurity("SASL_PLAINTEXT", mechanism, sasl_username="u", sasl_password="p")
    found = security.faststream_security()
    assert type(found) is kind
    assert found is not None and not found.use_ssl


def test_tls_without_sasl() -> None:
    security = KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "ssl"})
    assert security.client_options("h:1")["security_protocol"] == "SSL"
    assert type(security.faststream_security()) is BaseSecurity


def test_the_description_never_shows_the_password() -> None:
    security = KafkaSecurity("SASL_SSL", "PLAIN", sasl_username="alice", sasl_password="s3cret")
    described = security.describe("broker:9094")
    assert described == "broker:9094 (SASL_SSL, PLAIN as 'alice')"
    assert "s3cret" not in described + repr(security.describe("x"))


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS' is not one of"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "KAFKA_SASL_MECHANISM=None: SASL_SSL needs one of PLAIN, SCRAM-SHA-256",
        ),
        (
            {"KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u"},
            "KAFKA_SASL_MECHANISM='GSSAPI'",
        ),
        (
            {"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "alice"},
            "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN"},
            "SASL settings are given but KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
        ),
        ({"KAFKA_SSL_CA_FILE": "/ca.pem"}, "TLS files are given but KAFKA_SECURITY_PROTOCOL"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": "/c.pem"},
            "needs both KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/nowhere/ca.pem"},
            "KAFKA_SSL_CA_FILE=/nowhere/ca.pem: no such file",
        ),
    ],
)
def test_settings_that_cannot_work_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(KafkaAccessError, match=re.escape(message)):
        KafkaSecurity.from_env(environ)


def test_a_ca_file_is_used(tmp_path: Path) -> None:
    not_a_certificate = tmp_path / "ca.pem"
    not_a_certificate.write_text("not a certificate\n")
    security = KafkaSecurity.from_env(
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": str(not_a_certificate)}
    )
    # The file is read when a client is built: a broken one fails there, not at the broker.
    with pytest.raises(ssl.SSLError):
        security.client_options("h:1")
