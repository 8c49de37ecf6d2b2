"""What is hidden of a URL, and what is kept (so a person still knows which one)."""

from __future__ import annotations

import json
import logging

import pytest

from services.runtime.logs import JsonFormatter, TerminalFormatter
from services.runtime.secrets import redact


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "mongodb://offers:s3cret@db-1,db-2/?replicaSet=rs0&w=majority",
            "mongodb://offers:***@db-1,db-2/?replicaSet=rs0&w=majority",
        ),
        (
            "the database at mongodb+srv://app:p%40ss:w@rd@cluster0.example/offers: down",
            "the database at mongodb+srv://app:***@cluster0.example/offers: down",
        ),
        (
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=k3y&authSource=admin",
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***&authSource=admin",
        ),
        ("http://127.0.0.1:8001 is not answering", "http://127.0.0.1:8001 is not answering"),
        ("mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017"),
        ("https://u:pw@x/?token=abc", "https://u:***@x/?token=***"),
        ("asked with ?secret=abc&page=2", "asked with ?secret=***&page=2"),  # no URL
    ],
)
def test_a_password_is_hidden_and_the_rest_kept(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_no_log_line_carries_a_password_whatever_the_format() -> None:
    record = logging.LogRecord(
        "services.runtime.app", logging.WARNING, __file__, 1,
        "cannot reach %s", ("mongodb://offers:s3cret@db-1/",), None,
    )  # fmt: skip
    for formatter in (JsonFormatter(), TerminalFormatter("offer_service")):
        line = formatter.format(record)
        assert "s3cret" not in line and "offers:***@db-1" in line, line
    assert json.loads(JsonFormatter().format(record))["message"].endswith("offers:***@db-1/")
