"""How the gateway reads a command from a request, without I/O: the actor from its header,
the body checked with contracts/ as the services check it."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import pytest

from contracts import MAX_MESSAGE_BYTES, ExtendOffer, PostMessage
from services.gateway.commands import Refusal, authenticated_actor, read_command
from services.gateway.settings import GatewaySettings
from services.runtime.config import ConfigError
from tests.kit import Parties, hourly_terms

TODAY = date(2026, 12, 1)


def read(body: dict[str, Any] | bytes, actor: str = "client-ann") -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return read_command(raw, actor, today=TODAY, max_contract_days=180)


def test_the_actor_and_the_command_id_are_filled_when_left_out() -> None:
    command = read({"type": "PostMessage", "offer_id": "o-1", "message_id": "m-1", "text": "Hi"})
    assert isinstance(command, PostMessage)
    assert command.actor_id == "client-ann"
    assert uuid.UUID(command.command_id).version == 4
    assert command.key == "o-1"


def test_a_valid_extend_offer_is_the_contracts_model() -> None:
    parties = Parties(client_id="client-ann")
    terms = hourly_terms(start_date="2026-12-05", end_date="2027-03-01")
    command = read(parties.extend(terms))
    assert isinstance(command, ExtendOffer)
    assert command.terms.contract_type == "hourly"


def test_the_terms_rules_are_checked_against_the_date_and_the_policy() -> None:
    parties = Parties(client_id="client-ann")
    too_long = hourly_terms(start_date="2026-12-05", end_date="2027-12-05")
    refusal = read(parties.extend(too_long))
    assert isinstance(refusal, Refusal) and refusal.status == 400
    assert [e.field for e in refusal.errors] == ["terms.end_date"]
    allowed = read_command(
        json.dumps(parties.extend(too_long)).encode(),
        "client-ann",
        today=TODAY,
        max_contract_days=400,
    )
    assert isinstance(allowed, ExtendOffer)


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("", 401), ("not an id!", 401), ("x" * 65, 401)],
)
def test_a_missing_or_malformed_actor_header_is_401(header: str | None, status: int) -> None:
    refusal = authenticated_actor(header)
    assert isinstance(refusal, Refusal) and refusal.status == status
    assert "X-Actor-Id" in refusal.message


def test_a_body_over_a_mebibyte_is_413_before_it_is_parsed() -> None:
    refusal = read(b" " * (MAX_MESSAGE_BYTES + 1))
    assert isinstance(refusal, Refusal) and (refusal.status, refusal.error) == (413, "too_large")


def test_not_utf8_is_invalid_json() -> None:
    refusal = read(b'{"type": "\xff"}')
    assert isinstance(refusal, Refusal) and refusal.error == "invalid_json"


def test_every_error_of_a_command_is_listed_once() -> None:
    refusal = read({"type": "AcceptOffer", "offer_id": "", "version": 0, "extra": 1})
    assert isinstance(refusal, Refusal)
    assert [(e.field, e.message) for e in refusal.errors] == [
        ("offer_id", "must not be empty"),
        ("version", "must be at least 1"),
        ("extra", "is not a known field"),
    ]


def test_settings_come_from_the_environment_and_say_what_is_wrong() -> None:
    settings = GatewaySettings.from_env(
        {"GATEWAY_PORT": "18555", "MESSAGING_SERVICE_URL": "http://m:8002/"}
    )
    assert (settings.host, settings.port) == ("127.0.0.1", 18555)
    assert settings.messaging_service_url == "http://m:8002"
    with pytest.raises(ConfigError, match="GATEWAY_PORT='eighty' is not a whole number"):
        GatewaySettings.from_env({"GATEWAY_PORT": "eighty"})


def test_a_start_at_the_end_of_the_calendar_is_a_400_on_its_fields_not_a_500() -> None:
    parties = Parties(client_id="client-ann")
    end_of_time = hourly_terms(start_date="9999-12-31", end_date="9999-12-31")
    refusal = read(parties.extend(end_of_time))
    assert isinstance(refusal, Refusal) and refusal.status == 400
    assert [e.field for e in refusal.errors] == ["terms.start_date", "terms.end_date"]
