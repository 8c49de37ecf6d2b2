"""Valid example messages (as JSON-ready dicts) shared by the contracts tests."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

TODAY = date(2026, 11, 26)
RULES: dict[str, Any] = {"today": TODAY, "max_contract_days": 180}
AT = "2026-11-26T12:00:00Z"


def hourly(**changes: Any) -> dict[str, Any]:
    terms: dict[str, Any] = {
        "title": "Checkout redesign",
        "description": "What was agreed with the freelancer ...",
        "contract_type": "hourly",
        "currency": "USD",
        "hourly_rate": "45.00",
        "weekly_limit_hours": 30,
        "start_date": "2026-12-01",
        "end_date": "2027-03-31",
        "talent_cloud_id": "tc-design",
        "po_number": "PO-2026-0042",
        "custom_fields": {"cost_center": "R&D-12", "billable": True},
    }
    terms.update(changes)
    return {k: v for k, v in terms.items() if v is not ...}


def fixed(**changes: Any) -> dict[str, Any]:
    terms: dict[str, Any] = {
        "title": "Logo",
        "description": "A logo in three variants",
        "contract_type": "fixed",
        "currency": "EUR",
        "total_amount": "800.00",
        "milestones": [
            {"description": "Wireframes", "amount": "500.00", "due_date": "2026-12-15"},
            {"description": "Final files", "amount": "300.00"},
        ],
        "start_date": "2026-12-01",
        "end_date": "2027-01-31",
    }
    terms.update(changes)
    return {k: v for k, v in terms.items() if v is not ...}


def command(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "command_id": "cmd-1", "actor_id": "client-1", **fields}


def event(type_: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "event_id": "evt-1",
        "schema_version": 1,
        "occurred_at": AT,
        "causation_id": "cmd-1",
        **fields,
    }


PARTIES = {"client_id": "client-1", "freelancer_id": "free-1"}
OFFER = {"offer_id": "offer-1", "version": 1, **PARTIES}

COMMANDS: dict[str, dict[str, Any]] = {
    "ExtendOffer": command(
        "ExtendOffer",
        offer_id="offer-1",
        job_id="job-1",
        proposal_id="prop-1",
        terms=hourly(),
        message="Looking forward to it",
        **PARTIES,
    ),
    "ChangeOffer": command(
        "ChangeOffer", offer_id="offer-1", terms=fixed(), in_response_to="msg-1"
    ),
    "WithdrawOffer": command("WithdrawOffer", offer_id="offer-1", reason="Budget cut"),
    "AcceptOffer": command("AcceptOffer", actor_id="free-1", offer_id="offer-1", version=2),
    "DeclineOffer": command("DeclineOffer", actor_id="free-1", offer_id="offer-1"),
    "PostMessage": command("PostMessage", offer_id="offer-1", message_id="msg-1", text="Hi!"),
    "ProposeTerms": command(
        "ProposeTerms",
        offer_id="offer-1",
        message_id="msg-2",
        changes={"hourly_rate": "50.00", "po_number": None},
        text="A bit more?",
    ),
    "LogTime": command(
        "LogTime",
        actor_id="free-1",
        contract_id="contract-1",
        entry_id="entry-1",
        work_date="2026-12-02",
        hours="7.50",
        memo="Checkout flow",
        issued_at="2026-12-02T18:00:00.250Z",
    ),
    "MarkNotificationsRead": command(
        "MarkNotificationsRead", recipient_id="client-1", notification_ids=["n-1", "n-2"]
    ),
    "SetNotificationPreferences": command(
        "SetNotificationPreferences",
        recipient_id="client-1",
        email="ann@example.com",
        email_kinds=["offer_accepted", "offer_declined"],
        digest_kinds=["new_message"],
    ),
}

EVENTS: dict[str, dict[str, Any]] = {
    "OfferExtended": event(
        "OfferExtended",
        **OFFER,
        job_id="job-1",
        proposal_id="prop-1",
        terms=hourly(),
        message=None,
        expires_at="2026-12-26T12:00:00Z",
    ),
    "OfferChanged": event(
        "OfferChanged",
        **dict(OFFER, version=2),
        terms=fixed(),
        message="New terms",
        in_response_to="msg-2",
        expires_at="2026-12-27T12:00:00Z",
    ),
    "OfferWithdrawn": event("OfferWithdrawn", **OFFER, reason="Budget cut"),
    "OfferDeclined": event("OfferDeclined", **OFFER, proposal_id="prop-1", reason=None),
    "OfferExpired": event("OfferExpired", **OFFER, reason=None),
    "OfferAccepted": event(
        "OfferAccepted", **OFFER, terms=hourly(), accepted_at="2026-11-27T09:30:00.125Z"
    ),
    "ContractActivated": event(
        "ContractActivated",
        contract_id="contract-1",
        offer_id="offer-1",
        offer_version=1,
        job_id="job-1",
        terms=hourly(),
        activated_at=AT,
        **PARTIES,
    ),
    "TimeLogged": event(
        "TimeLogged",
        contract_id="contract-1",
        entry_id="entry-1",
        work_date="2026-12-02",
        hours="7.50",
    ),
    "TalentCloudMemberAdded": event(
        "TalentCloudMemberAdded",
        talent_cloud_id="tc-design",
        freelancer_id="free-1",
        contract_id="contract-1",
    ),
    "MessagePosted": event(
        "MessagePosted",
        offer_id="offer-1",
        message_id="msg-1",
        sender_id="free-1",
        text="Hi!",
        sent_at=AT,
    ),
    "TermsProposed": event(
        "TermsProposed",
        offer_id="offer-1",
        message_id="msg-2",
        sender_id="free-1",
        changes={"hourly_rate": "50.00", "po_number": None},
        differences=[
            {"field": "hourly_rate", "current": "45.00", "proposed": "50.00"},
            {"field": "po_number", "current": "PO-2026-0042", "proposed": None},
        ],
        text=None,
        sent_at=AT,
    ),
    "ThreadClosed": event("ThreadClosed", offer_id="offer-1", reason="accepted"),
    "NotificationCreated": event(
        "NotificationCreated",
        notification_id="n-1",
        recipient_id="free-1",
        kind="offer_received",
        offer_id="offer-1",
        contract_id=None,
        title="New offer",
        body="Client sent you an offer",
        created_at=AT,
        source_event_id="evt-1",
    ),
    "NotificationPreferencesChanged": event(
        "NotificationPreferencesChanged",
        recipient_id="free-1",
        email="bob@example.com",
        email_kinds=["all"],
        digest_kinds=["new_message"],
        changed_at=AT,
    ),
    "CommandRejected": event(
        "CommandRejected",
        command_id="cmd-1",
        command_type="ExtendOffer",
        actor_id="client-1",
        code="invalid_command",
        message="ExtendOffer is invalid: 1 problem",
        errors=[{"field": "terms.end_date", "message": "must not be before start_date"}],
        status=None,
    ),
}


def raw(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()
