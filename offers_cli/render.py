"""Events, rejections and read-API resources as lines a person reads at a glance."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from contracts import (
    CommandRejected,
    ContractActivated,
    Event,
    MessagePosted,
    NotificationCreated,
    NotificationPreferencesChanged,
    OfferAccepted,
    OfferChanged,
    OfferDeclined,
    OfferExpired,
    OfferExtended,
    OfferWithdrawn,
    TalentCloudMemberAdded,
    TermsDifference,
    TermsProposed,
    ThreadClosed,
    TimeLogged,
    format_utc,
)
from offers_cli.build import with_option
from offers_cli.bus import Record
from services.mailcatcher import text_of

OK, NO = "✔", "✘"


def short(text: str | None, limit: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def day(value: datetime | str | None) -> str:
    """The date of a time (``2026-12-26``), for expiry and the like."""
    if value is None:
        return "-"
    return (format_utc(value) if isinstance(value, datetime) else value)[:10]


def when(value: datetime | str | None) -> str:
    """``2026-12-26 12:00 UTC``."""
    if value is None:
        return "-"
    text = format_utc(value) if isinstance(value, datetime) else value
    return f"{text[:10]} {text[11:16]} UTC"


def json_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def price(t: Mapping[str, Any]) -> str:
    """``hourly 45.00 USD/h, ≤ 30 h/week`` or ``fixed 800.00 USD in 2 milestones``."""
    currency = t.get("currency", "USD")
    if t.get("contract_type") == "fixed":
        count = len(t.get("milestones") or ())
        return f"fixed {t.get('total_amount')} {currency} in {count} milestone" + "s" * (count != 1)
    limit = f", ≤ {t['weekly_limit_hours']} h/week" if t.get("weekly_limit_hours") else ""
    return f"hourly {t.get('hourly_rate')} {currency}/h{limit}"


def terms_summary(terms: Mapping[str, Any] | Any) -> str:
    """``hourly 45.00 USD/h, ≤ 30 h/week, 2026-12-01 → 2027-03-31, Talent Cloud tc-design``."""
    t: Mapping[str, Any] = terms if isinstance(terms, Mapping) else terms.model_dump(mode="json")
    parts = [price(t), f"{t.get('start_date')} → {t.get('end_date')}"]
    if t.get("talent_cloud_id"):
        parts.append(f"Talent Cloud {t['talent_cloud_id']}")
    return ", ".join(parts)


def differences(items: Iterable[TermsDifference | Mapping[str, Any]]) -> str:
    parts = []
    for item in items:
        d = item.model_dump(mode="json") if isinstance(item, TermsDifference) else item
        parts.append(f"{d['field']} {json_value(d['current'])} → {json_value(d['proposed'])}")
    return ", ".join(parts)


def field_errors(rejection: CommandRejected, *, hints: bool) -> list[str]:
    return [f"{with_option(e.field) if hints else e.field}: {e.message}" for e in rejection.errors]


def describe(event: Event) -> str:
    """What an event says, in one line (without its type)."""
    match event:
        case OfferExtended():
            return (
                f"offer {event.offer_id} version {event.version}: {event.client_id} → "
                f"{event.freelancer_id}, {terms_summary(event.terms)}; "
                f"expires {day(event.expires_at)}"
            )
        case OfferChanged():
            answer = f" (answers proposal {event.in_response_to})" if event.in_response_to else ""
            return (
                f"offer {event.offer_id} version {event.version}: "
                f"{terms_summary(event.terms)}; expires {day(event.expires_at)}{answer}"
            )
        case OfferWithdrawn() | OfferDeclined() | OfferExpired():
            reason = f": {short(event.reason)}" if event.reason else ""
            return f"offer {event.offer_id} version {event.version}{reason}"
        case OfferAccepted():
            return (
                f"offer {event.offer_id} version {event.version} accepted by "
                f"{event.freelancer_id}: {terms_summary(event.terms)}"
            )
        case ContractActivated():
            return (
                f"contract {event.contract_id} is active: offer {event.offer_id} version "
                f"{event.offer_version}, {event.client_id} ↔ {event.freelancer_id}"
            )
        case TimeLogged():
            return (
                f"contract {event.contract_id}: {event.hours} h on {event.work_date} "
                f"(entry {event.entry_id})"
            )
        case TalentCloudMemberAdded():
            return (
                f"{event.freelancer_id} joined Talent Cloud {event.talent_cloud_id} "
                f"(contract {event.contract_id})"
            )
        case MessagePosted():
            return f"offer {event.offer_id}: {event.sender_id} says “{short(event.text)}”"
        case TermsProposed():
            said = f" — “{short(event.text)}”" if event.text else ""
            return (
                f"offer {event.offer_id}: {event.sender_id} proposes "
                f"{differences(event.differences)} (message {event.message_id}){said}"
            )
        case ThreadClosed():
            return f"the thread of offer {event.offer_id} is closed ({event.reason})"
        case NotificationCreated():
            return f"for {event.recipient_id} [{event.kind}] {short(event.title)}"
        case NotificationPreferencesChanged():
            where = f"email to {event.email}" if event.email else "no email"
            return (
                f"{event.recipient_id}: {where} for {', '.join(event.email_kinds) or 'no kind'}"
                f" (digest: {', '.join(event.digest_kinds) or 'none'})"
            )
        case CommandRejected():
            status = f" (status {event.status})" if event.status else ""
            errors = "; ".join(field_errors(event, hints=False))
            return (
                f"{event.command_type} {event.command_id} by {event.actor_id}: "
                f"{event.code.value}{status}: {short(event.message, 200)}"
                + (f" — {errors}" if errors else "")
            )
        case _:
            return short(event.model_dump_json(), 200)


def outcome(event: Event) -> list[str]:
    """The answer to one's own command: ``✔ …`` or ``✘ rejected (code): …`` with the errors."""
    if isinstance(event, CommandRejected):
        said = not event.status or event.status in event.message  # do not say it twice
        status = "" if said else f" (status {event.status})"
        lines = [f"{NO} rejected ({event.code.value}): {event.message}{status}"]
        lines += [f"    - {line}" for line in field_errors(event, hints=True)]
        return lines
    return [f"{OK} {event.type} {describe(event)}"]


def watch_line(record: Record) -> str:
    """One line per record: time, topic, type, key, what it says."""
    clock = datetime.fromtimestamp(record.timestamp_ms / 1000).strftime("%H:%M:%S")
    head = f"{clock} {record.topic:<22} {record.type or '?':<22} {record.key or '-'}"
    event = record.event()
    if event is not None:
        return f"{head}  {describe(event)}"
    if not isinstance(record.value, dict):  # dead-lettered bytes, or not JSON
        error = record.headers.get("error")
        return f"{head}  {short(record.raw.decode(errors='replace'), 120)}" + (
            f" [error: {short(error, 120)}]" if error else ""
        )
    fields = {
        k: v
        for k, v in record.value.items()
        if k not in ("type", "command_id", "issued_at", "actor_id")
    }
    body = ", ".join(f"{k}={short(json_value(v), 60)}" for k, v in fields.items() if v is not None)
    return f"{head}  by {record.value.get('actor_id')}: {body}"


# --- read API resources ----------------------------------------------------------------------


def terms_block(terms: Mapping[str, Any], indent: str = "  ") -> list[str]:
    lines = [
        f"{indent}title:        {terms.get('title')}",
        f"{indent}description:  {short(terms.get('description'), 200)}",
        f"{indent}price:        {price(terms)}",
        f"{indent}dates:        {terms.get('start_date')} → {terms.get('end_date')}",
    ]
    for milestone in terms.get("milestones") or ():
        due = f" due {milestone['due_date']}" if milestone.get("due_date") else ""
        lines.append(
            f"{indent}  milestone:  {milestone['description']}: {milestone['amount']}{due}"
        )
    for name, label in (("talent_cloud_id", "talent cloud"), ("po_number", "PO number")):
        if terms.get(name):
            lines.append(f"{indent}{label + ':':<14}{terms[name]}")
    for key, value in (terms.get("custom_fields") or {}).items():
        lines.append(f"{indent}{key + ':':<14}{json_value(value)}")
    return lines


def offer_view(offer: Mapping[str, Any]) -> list[str]:
    lines = [
        f"offer {offer['offer_id']}: {offer['status']}, version {offer['version']}"
        + (f", expires {when(offer.get('expires_at'))}" if offer["status"] == "pending" else ""),
        f"  client {offer['client_id']} → freelancer {offer['freelancer_id']} "
        f"(job {offer['job_id']}, proposal {offer['proposal_id']})",
        *terms_block(offer["terms"]),
    ]
    if offer.get("message"):
        lines.append(f"  message:      {short(offer['message'], 200)}")
    for version in offer.get("versions") or ():
        answer = (
            f", answering proposal {version['in_response_to']}"
            if version.get("in_response_to")
            else ""
        )
        lines.append(
            f"  v{version['version']} sent {when(version.get('sent_at'))}: "
            f"{terms_summary(version['terms'])}{answer}"
        )
    return lines


def offers_list(offers: Sequence[Mapping[str, Any]]) -> list[str]:
    if not offers:
        return ["no offers"]
    return [
        f"{o['offer_id']}  {o['status']:<9} v{o['version']}  {o['client_id']} → "
        f"{o['freelancer_id']}  {short(o['terms'].get('title'), 40)}: {terms_summary(o['terms'])}"
        for o in offers
    ]


def contract_view(contract: Mapping[str, Any]) -> list[str]:
    lines = [
        f"contract {contract['contract_id']}: {contract['status']} since "
        f"{when(contract.get('activated_at'))}",
        f"  client {contract['client_id']} ↔ freelancer {contract['freelancer_id']} "
        f"(offer {contract['offer_id']} version {contract['offer_version']})",
        *terms_block(contract["terms"]),
    ]
    for entry in contract.get("time_entries") or ():
        memo = f" — {short(entry.get('memo'), 60)}" if entry.get("memo") else ""
        lines.append(f"  logged {entry.get('hours')} h on {entry.get('work_date')}{memo}")
    return lines


def contracts_list(contracts: Sequence[Mapping[str, Any]]) -> list[str]:
    if not contracts:
        return ["no contracts"]
    return [
        f"{c['contract_id']}  {c['status']:<7} {c['client_id']} ↔ {c['freelancer_id']}  "
        f"{short(c['terms'].get('title'), 40)}: {terms_summary(c['terms'])}"
        for c in contracts
    ]


def members_list(talent_cloud_id: str, members: Sequence[Mapping[str, Any]]) -> list[str]:
    if not members:
        return [f"Talent Cloud {talent_cloud_id} has no members"]
    return [f"Talent Cloud {talent_cloud_id}:"] + [
        f"  {m['freelancer_id']} joined {when(m.get('joined_at'))} (contract {m['contract_id']})"
        for m in members
    ]


def thread_view(thread: Mapping[str, Any]) -> list[str]:
    state = f"closed ({thread.get('close_reason')})" if thread.get("closed") else "open"
    lines = [f"thread of offer {thread['offer_id']}: {state}, offer version {thread['version']}"]
    if not thread["items"]:
        lines.append("  no messages yet")
    for item in thread["items"]:
        head = f"  {when(item.get('sent_at'))}  {item['sender_id']}"
        if item.get("kind") == "terms_proposal":
            answered = item.get("answered_by_version")
            lines.append(
                f"{head} proposes {differences(item.get('differences') or ())} "
                f"(message {item['message_id']}"
                + (f", answered by version {answered})" if answered else ")")
            )
            if item.get("text"):
                lines.append(f"      “{short(item['text'], 200)}”")
        else:
            lines.append(f"{head}: “{short(item.get('text'), 200)}”")
    return lines


def preferences_view(data: Mapping[str, Any]) -> list[str]:
    recipient = data["recipient_id"]
    if not data.get("email"):
        return [f"{recipient} gets no email (`offers email-settings --email ADDRESS` to start)"]
    kinds = data.get("email_kinds") or []
    digest = [k for k in data.get("digest_kinds") or [] if "all" in kinds or k in kinds]
    return [
        f"{recipient} gets email at {data['email']} for: {', '.join(kinds) or 'no kind'}",
        f"  gathered into a digest: {', '.join(digest) or 'none'}",
    ]


def mail_json(message: EmailMessage) -> dict[str, Any]:
    return {
        "from": message["From"],
        "to": message["To"],
        "subject": message["Subject"],
        "date": message["Date"],
        "message_id": message["Message-ID"],
        "list_unsubscribe": message["List-Unsubscribe"],
        "text": text_of(message),
    }


def mail_view(address: str, directory: Path, messages: Sequence[EmailMessage]) -> list[str]:
    if not messages:
        return [
            f"no email for {address} in {directory} (is the mail catcher running? `make run` "
            "starts it; MAIL_DIR or --dir names another Maildir)"
        ]
    lines = [f"{len(messages)} email(s) for {address} (in {directory}):"]
    for message in messages:
        lines += [
            "",
            f"Date:       {message['Date']}",
            f"From:       {message['From']}",
            f"To:         {message['To']}",
            f"Subject:    {message['Subject']}",
            f"Message-ID: {message['Message-ID']}",
            "",
            *(f"  {line}" for line in text_of(message).rstrip().splitlines()),
        ]
    return lines


def inbox_view(recipient_id: str, items: Sequence[Mapping[str, Any]]) -> list[str]:
    if not items:
        return [f"{recipient_id} has no notifications"]
    unread = sum(not n.get("read") for n in items)
    lines = [f"{recipient_id}: {len(items)} notification(s), {unread} unread"]
    for n in items:
        mark = " " if n.get("read") else "•"
        lines.append(
            f" {mark} {when(n.get('created_at'))}  [{n['kind']}] {n['title']}  "
            f"({n['notification_id']})"
        )
        if n.get("body"):
            lines.append(f"      {short(n['body'], 160)}")
    return lines
