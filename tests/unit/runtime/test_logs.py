"""Log lines name the message being handled: its type and ids."""

from __future__ import annotations

import json
import logging

from contracts import OFFER_COMMAND_ADAPTER
from services.runtime.logs import JsonFormatter, TerminalFormatter, message_context
from tests.kit import Parties


def record(message: str, **extra: str) -> logging.LogRecord:
    line = logging.LogRecord("offers", logging.INFO, __file__, 1, message, (), None)
    line.__dict__.update(extra)
    return line


def test_a_line_logged_while_handling_carries_the_message_ids() -> None:
    command = OFFER_COMMAND_ADAPTER.validate_python(Parties().extend())
    with message_context(command):
        entry = json.loads(JsonFormatter().format(record("stored the offer")))
    assert entry["message"] == "stored the offer"
    assert entry["offer_id"] == command.offer_id
    assert entry["command_id"] == command.command_id
    assert entry["message_type"] == "ExtendOffer"
    assert entry["level"] == "info"


def test_outside_handling_only_the_passed_ids_appear() -> None:
    entry = json.loads(JsonFormatter().format(record("relayed", event_id="e-1")))
    assert entry["event_id"] == "e-1"
    assert "offer_id" not in entry and "message_type" not in entry


def test_the_terminal_line_adds_only_the_ids_its_text_lacks() -> None:
    command = OFFER_COMMAND_ADAPTER.validate_python(Parties().extend())
    with message_context(command):
        line = TerminalFormatter("offer_service").format(record(f"offer {command.offer_id} stored"))
    assert line.count(command.offer_id) == 1
    assert f"command_id={command.command_id}" in line
    assert "offer_service INFO" in line
