"""The offer state machine and the contract rules, with no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts import (
    OFFER_COMMAND_ADAPTER,
    AcceptOffer,
    ChangeOffer,
    DeclineOffer,
    ExtendOffer,
    LogTime,
    OfferAccepted,
    RejectionCode,
    WithdrawOffer,
)
from services.offer_service.domain import contract as contract_rules
from services.offer_service.domain import offer as offer_rules
from services.offer_service.domain.offer import Decision, Offer, Policy
from services.rules import OfferStatus, Rejection

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICY = Policy()


def hourly(**changes: Any) -> dict[str, Any]:
    terms: dict[str, Any] = {
        "title": "Checkout redesign",
        "description": "As agreed.",
        "contract_type": "hourly",
        "hourly_rate": "45.00",
        "weekly_limit_hours": 10,
        "start_date": "2026-12-01",
        "end_date": "2027-03-31",
        "talent_cloud_id": "tc-design",
    }
    return {**terms, **changes}


def make(type_: str, actor: str, **fields: Any) -> Any:
    return OFFER_COMMAND_ADAPTER.validate_python(
        {"type": type_, "command_id": f"cmd-{type_}-{actor}", "actor_id": actor, **fields}
    )


def extend_command(actor: str = "client-1") -> ExtendOffer:
    command = make(
        "ExtendOffer",
        actor,
        offer_id="offer-1",
        job_id="job-1",
        proposal_id="prop-1",
        client_id="client-1",
        freelancer_id="free-1",
        terms=hourly(),
    )
    assert isinstance(command, ExtendOffer)
    return command


def pending_offer() -> Offer:
    decision = offer_rules.extend(None, extend_command(), NOW, POLICY)
    assert isinstance(decision, Decision)
    return decision.offer


# Each command's rule, as the service's table names it.
RULES: dict[type, Any] = {
    ChangeOffer: offer_rules.change,
    WithdrawOffer: offer_rules.withdraw,
    AcceptOffer: offer_rules.accept,
    DeclineOffer: offer_rules.decline,
}


def decide(offer: Offer | None, command: Any, now: datetime = NOW) -> Decision | Rejection:
    outcome: Decision | Rejection = RULES[type(command)](offer, command, now, POLICY)
    return outcome


def decided(offer: Offer, command: Any, now: datetime = NOW) -> Decision:
    outcome = decide(offer, command, now)
    assert isinstance(outcome, Decision), outcome
    return outcome


def refused(offer: Offer | None, command: Any, now: datetime = NOW) -> Rejection:
    outcome = decide(offer, command, now)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def test_extend_opens_version_one_for_thirty_days() -> None:
    decision = offer_rules.extend(None, extend_command(), NOW, POLICY)
    assert isinstance(decision, Decision)
    assert decision.offer.status is OfferStatus.PENDING and decision.offer.version == 1
    assert decision.offer.expires_at == NOW + timedelta(days=30)
    [event] = decision.events
    assert event.type == "OfferExtended" and event.causation_id == "cmd-ExtendOffer-client-1"
    assert event.terms == decision.offer.terms


def test_only_the_named_client_may_extend() -> None:
    outcome = offer_rules.extend(None, extend_command(actor="someone"), NOW, POLICY)
    assert isinstance(outcome, Rejection) and outcome.code is RejectionCode.NOT_AUTHORIZED


WRONG_ACTORS = [
    ("ChangeOffer", {"terms": hourly()}, "free-1"),
    ("ChangeOffer", {"terms": hourly()}, "stranger"),
    ("WithdrawOffer", {}, "free-1"),
    ("WithdrawOffer", {}, "stranger"),
    ("AcceptOffer", {"version": 1}, "client-1"),
    ("AcceptOffer", {"version": 1}, "stranger"),
    ("DeclineOffer", {}, "client-1"),
    ("DeclineOffer", {}, "stranger"),
]


@pytest.mark.parametrize(("type_", "fields", "actor"), WRONG_ACTORS)
def test_every_command_refuses_every_wrong_actor(
    type_: str, fields: dict[str, Any], actor: str
) -> None:
    rejection = refused(pending_offer(), make(type_, actor, offer_id="offer-1", **fields))
    assert rejection.code is RejectionCode.NOT_AUTHORIZED
    assert actor in rejection.message


def test_change_makes_a_new_version_with_a_new_window() -> None:
    later = NOW + timedelta(days=3)
    change = make(
        "ChangeOffer",
        "client-1",
        offer_id="offer-1",
        terms=hourly(hourly_rate="50.00"),
        in_response_to="msg-9",
    )
    assert isinstance(change, ChangeOffer)
    decision = decided(pending_offer(), change, later)
    assert decision.offer.version == 2
    assert decision.offer.expires_at == later + timedelta(days=30)
    assert [v.version for v in decision.offer.versions] == [1, 2]
    [event] = decision.events
    assert event.type == "OfferChanged" and event.in_response_to == "msg-9"


def test_an_offer_has_at_most_max_versions_versions() -> None:
    offer = pending_offer()
    for _ in range(POLICY.max_versions - 1):
        change = make("ChangeOffer", "client-1", offer_id="offer-1", terms=hourly())
        offer = decided(offer, change).offer
    assert offer.version == POLICY.max_versions
    one_more = make("ChangeOffer", "client-1", offer_id="offer-1", terms=hourly())
    rejection = refused(offer, one_more)
    assert rejection.code is RejectionCode.TOO_MANY_VERSIONS
    assert "withdraw it and extend a new offer" in rejection.message


def test_accept_must_name_the_current_version() -> None:
    offer = decided(
        pending_offer(), make("ChangeOffer", "client-1", offer_id="offer-1", terms=hourly())
    ).offer
    rejection = refused(offer, make("AcceptOffer", "free-1", offer_id="offer-1", version=1))
    assert rejection.code is RejectionCode.VERSION_MISMATCH
    decision = decided(offer, make("AcceptOffer", "free-1", offer_id="offer-1", version=2))
    assert decision.offer.status is OfferStatus.ACCEPTED
    [event] = decision.events
    assert isinstance(event, OfferAccepted) and event.version == 2


def test_past_expiry_nothing_can_be_accepted_even_before_the_sweep() -> None:
    offer = pending_offer()
    at_expiry = offer.expires_at
    accept = make("AcceptOffer", "free-1", offer_id="offer-1", version=1)
    assert isinstance(accept, AcceptOffer)
    assert refused(offer, accept, at_expiry).code is RejectionCode.OFFER_EXPIRED
    assert isinstance(
        decide(offer, accept, at_expiry - timedelta(seconds=1)),
        Decision,
    )


@pytest.mark.parametrize(
    ("type_", "actor", "fields"),
    [
        ("ChangeOffer", "client-1", {"terms": hourly()}),
        ("WithdrawOffer", "client-1", {}),
        ("AcceptOffer", "free-1", {"version": 1}),
        ("DeclineOffer", "free-1", {}),
    ],
)
@pytest.mark.parametrize("closing", ["WithdrawOffer", "DeclineOffer"])
def test_a_closed_offer_refuses_everything(
    type_: str, actor: str, fields: dict[str, Any], closing: str
) -> None:
    closer = "client-1" if closing == "WithdrawOffer" else "free-1"
    closed = decided(pending_offer(), make(closing, closer, offer_id="offer-1")).offer
    rejection = refused(closed, make(type_, actor, offer_id="offer-1", **fields))
    assert rejection.code is RejectionCode.INVALID_STATE
    assert rejection.status == closed.status


def test_withdraw_and_decline_carry_their_reason() -> None:
    withdraw = make("WithdrawOffer", "client-1", offer_id="offer-1", reason="Budget cut")
    assert isinstance(withdraw, WithdrawOffer)
    assert decided(pending_offer(), withdraw).offer.close_reason == "Budget cut"
    decline = make("DeclineOffer", "free-1", offer_id="offer-1")
    assert isinstance(decline, DeclineOffer)
    [event] = decided(pending_offer(), decline).events
    assert event.type == "OfferDeclined" and event.proposal_id == "prop-1"


def test_the_sweep_expires_only_pending_offers_past_expiry() -> None:
    offer = pending_offer()
    assert (
        offer_rules.expire(offer, now=offer.expires_at - timedelta(seconds=1), sweep_id="s") is None
    )
    decision = offer_rules.expire(offer, now=offer.expires_at, sweep_id="s")
    assert decision is not None and decision.offer.status is OfferStatus.EXPIRED
    assert offer_rules.expire(decision.offer, now=offer.expires_at, sweep_id="s") is None


# --- contracts ---------------------------------------------------------------------------


def active_contract(**terms: Any) -> contract_rules.Contract:
    offer = pending_offer()
    if terms:
        change = make("ChangeOffer", "client-1", offer_id="offer-1", terms=hourly(**terms))
        offer = decided(offer, change).offer
    accept = make("AcceptOffer", "free-1", offer_id="offer-1", version=offer.version)
    [accepted] = decided(offer, accept).events
    assert isinstance(accepted, OfferAccepted)
    contract, event = contract_rules.activate(accepted, job_id="job-1", now=NOW)
    assert event.contract_id == contract.contract_id == contract_rules.contract_id_for("offer-1")
    return contract


def log(day: date, hours: str, actor: str = "free-1") -> LogTime:
    return LogTime.model_validate(
        {
            "type": "LogTime",
            "command_id": f"cmd-{day}-{hours}",
            "actor_id": actor,
            "contract_id": "c",
            "entry_id": f"e-{day}-{hours}",
            "work_date": day.isoformat(),
            "hours": hours,
        }
    )


def test_one_contract_id_per_offer() -> None:
    assert contract_rules.contract_id_for("offer-1") == contract_rules.contract_id_for("offer-1")
    assert contract_rules.contract_id_for("offer-1") != contract_rules.contract_id_for("offer-2")


def test_no_time_before_the_start_date_or_after_the_end_date() -> None:
    contract = active_contract()
    for day in (date(2026, 11, 30), date(2027, 4, 1)):
        outcome = contract_rules.log_time(contract, log(day, "1.00"), now=NOW)
        assert isinstance(outcome, Rejection)
        assert outcome.code is RejectionCode.OUTSIDE_CONTRACT_DATES
    assert not isinstance(
        contract_rules.log_time(contract, log(date(2026, 12, 1), "1.00"), now=NOW), Rejection
    )


def test_the_weekly_limit_counts_the_iso_week() -> None:
    contract = active_contract()
    monday, sunday, next_monday = date(2026, 12, 7), date(2026, 12, 13), date(2026, 12, 14)
    outcome = contract_rules.log_time(contract, log(monday, "8.00"), now=NOW)
    assert not isinstance(outcome, Rejection)
    contract = outcome[0]
    assert contract.hours_by_week == {"2026-W50": Decimal("8.00")}
    over = contract_rules.log_time(contract, log(sunday, "2.01"), now=NOW)
    assert isinstance(over, Rejection) and over.code is RejectionCode.WEEKLY_LIMIT_EXCEEDED
    assert not isinstance(
        contract_rules.log_time(contract, log(sunday, "2.00"), now=NOW), Rejection
    )
    assert not isinstance(
        contract_rules.log_time(contract, log(next_monday, "10.00"), now=NOW), Rejection
    )


def test_only_the_freelancer_logs_time_and_only_on_hourly_contracts() -> None:
    contract = active_contract()
    outcome = contract_rules.log_time(contract, log(date(2026, 12, 2), "1.00", "client-1"), now=NOW)
    assert isinstance(outcome, Rejection) and outcome.code is RejectionCode.NOT_AUTHORIZED


def test_membership_only_when_the_terms_name_a_cloud() -> None:
    contract = active_contract()
    join = contract_rules.talent_cloud_join(contract, causation_id="evt")
    assert join is not None and join.talent_cloud_id == "tc-design"
    assert join.freelancer_id == contract.freelancer_id and join.causation_id == "evt"
    without = active_contract(talent_cloud_id=None)
    assert contract_rules.talent_cloud_join(without, causation_id="evt") is None


def test_an_offer_is_extended_once_and_the_other_commands_need_one() -> None:
    offer = pending_offer()
    again = offer_rules.extend(offer, extend_command(), NOW, POLICY)
    assert isinstance(again, Rejection) and again.code is RejectionCode.OFFER_EXISTS
    assert again.status is OfferStatus.PENDING
    for type_, actor, fields in (
        ("ChangeOffer", "client-1", {"terms": hourly()}),
        ("WithdrawOffer", "client-1", {}),
        ("AcceptOffer", "free-1", {"version": 1}),
        ("DeclineOffer", "free-1", {}),
    ):
        command = make(type_, actor, offer_id="offer-1", **fields)
        assert refused(None, command).code is RejectionCode.UNKNOWN_OFFER
