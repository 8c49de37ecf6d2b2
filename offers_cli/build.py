"""Options → command models. Every command is validated by its ``contracts`` model here, so
a typo is reported before anything is sent; the rules that need state are the services'."""

from __future__ import annotations

import argparse
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from contracts import (
    OFFER_TERMS_ADAPTER,
    AcceptOffer,
    ChangeOffer,
    Command,
    DeclineOffer,
    ExtendOffer,
    LogTime,
    MarkNotificationsRead,
    PostMessage,
    ProposeTerms,
    SetNotificationPreferences,
    TermsChanges,
    WithdrawOffer,
    apply_changes,
    errors_from_validation,
)
from offers_cli.errors import UsageError

OfferLookup = Callable[[str], Mapping[str, Any]]
"""The read API's offer (``GET /offers/{id}``): ``change`` and ``accept`` start from it."""

# Terms option (argparse dest) → terms field.
TERMS_OPTIONS: Final = {
    "title": "title",
    "description": "description",
    "currency": "currency",
    "rate": "hourly_rate",
    "weekly_limit": "weekly_limit_hours",
    "total": "total_amount",
    "start": "start_date",
    "end": "end_date",
    "talent_cloud": "talent_cloud_id",
    "po_number": "po_number",
}
# Field → the option that sets it, to point at the option in error messages.
OPTION_OF: Final = {
    **{field: "--" + dest.replace("_", "-") for dest, field in TERMS_OPTIONS.items()},
    "milestones": "--milestone",
    "custom_fields": "--custom-field",
    "contract_type": "--type",
    "freelancer_id": "--freelancer",
    "hours": "--hours",
    "work_date": "--date",
}
HOURLY_FIELDS: Final = ("hourly_rate", "weekly_limit_hours")
FIXED_FIELDS: Final = ("total_amount", "milestones")
REMOVABLE: Final = ("weekly_limit_hours", "talent_cloud_id", "po_number", "custom_fields")

_RELATIVE_DAYS: Final = re.compile(r"\+(\d{1,4})d?")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")

_C = TypeVar("_C", bound=Command)


def new_id() -> str:
    # SPEC §2: producer-chosen ids are UUIDs by convention.
    return str(uuid.uuid4())


def today() -> date:
    return datetime.now(UTC).date()


# --- option values ---------------------------------------------------------------------------


def resolve_date(text: str, *, base: date | None = None) -> str:
    """``YYYY-MM-DD``, ``today`` or ``+N`` / ``+Nd`` (N days from today, UTC)."""
    base = base or today()
    if text == "today":
        return base.isoformat()
    relative = _RELATIVE_DAYS.fullmatch(text)
    if relative:
        return (base + timedelta(days=int(relative.group(1)))).isoformat()
    return text  # the model says what is wrong with it, if anything


def parse_milestone(text: str, *, base: date | None = None) -> dict[str, str]:
    """``description:amount[:due-date]``; the description may itself contain colons."""
    head, _, last = text.rpartition(":")
    due: str | None = None
    if head and (_DATE.fullmatch(last) or last == "today" or _RELATIVE_DAYS.fullmatch(last)):
        due = resolve_date(last, base=base)
        head, _, last = head.rpartition(":")
    if not head:
        raise UsageError(
            f"--milestone {text!r}: expected description:amount[:due-date], "
            'like "Wireframes:500:2026-12-15"'
        )
    milestone = {"description": head, "amount": last}
    if due is not None:
        milestone["due_date"] = due
    return milestone


def parse_custom_field(text: str) -> tuple[str, str | int | float | bool]:
    """``key=value``: a JSON number or boolean becomes one, anything else is a string."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise UsageError(f"--custom-field {text!r}: expected key=value, like cost_center=R&D-12")
    try:
        value = json.loads(raw)
    except ValueError:
        return key, raw
    if isinstance(value, bool | int | float | str):
        return key, value
    return key, raw


def _sum(amounts: Iterable[str]) -> str | None:
    try:
        return f"{sum((Decimal(a) for a in amounts), Decimal(0)):.2f}"
    except InvalidOperation:
        return None  # a bad amount: the model reports it


def terms_fields(args: argparse.Namespace, *, base: date | None = None) -> dict[str, Any]:
    """The terms fields the options give, and only those (JSON values, not yet validated).

    The contract type follows from the options (``--rate`` → hourly, ``--total`` or
    ``--milestone`` → fixed) unless ``--type`` says it; a fixed total defaults to the sum of
    the milestones.
    """
    fields: dict[str, Any] = {}
    for dest, name in TERMS_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is not None:
            fields[name] = resolve_date(value, base=base) if name.endswith("_date") else value
    if args.milestone:
        fields["milestones"] = [parse_milestone(m, base=base) for m in args.milestone]
    if args.custom_field:
        fields["custom_fields"] = dict(parse_custom_field(c) for c in args.custom_field)
    hourly = any(name in fields for name in HOURLY_FIELDS)
    fixed = any(name in fields for name in FIXED_FIELDS)
    if args.type is not None:
        fields["contract_type"] = args.type
    elif hourly and fixed:
        raise UsageError(
            "--rate/--weekly-limit are for hourly offers and --total/--milestone for fixed "
            "ones: give one kind (or --type)"
        )
    elif hourly or fixed:
        fields["contract_type"] = "hourly" if hourly else "fixed"
    if "milestones" in fields and "total_amount" not in fields:
        total = _sum(str(m["amount"]) for m in fields["milestones"])
        if total is not None:
            fields["total_amount"] = total
    return fields


# --- commands --------------------------------------------------------------------------------


def validated(model: type[_C], data: dict[str, Any]) -> _C:
    """The command, or one line listing every problem as ``field (--option): message``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{with_option(e.field)}: {e.message}" for e in errors_from_validation(exc)
        )
        raise UsageError(f"invalid {model.__name__}: {problems}") from None


def with_option(field: str) -> str:
    """``terms.hourly_rate`` → ``terms.hourly_rate (--rate)``, to point at what to fix."""
    parts = field.split(".")
    for part in reversed(parts):
        if part in OPTION_OF:
            return f"{field} ({OPTION_OF[part]})"
    return field


def _base(args: argparse.Namespace, actor: str, type_: str) -> dict[str, Any]:
    return {
        "type": type_,
        "command_id": args.command_id or new_id(),
        "actor_id": actor,
        "issued_at": datetime.now(UTC),
    }


def current_terms(offer: Mapping[str, Any]) -> Any:
    try:
        return OFFER_TERMS_ADAPTER.validate_python(offer["terms"])
    except (ValidationError, KeyError):
        raise UsageError("the read API's offer has terms this client cannot read") from None


def _changes(args: argparse.Namespace, current_custom: Mapping[str, Any] | None) -> dict[str, Any]:
    """The changed terms fields; ``--custom-field`` sets keys on top of the current ones and
    ``--remove`` clears an optional field."""
    changes = terms_fields(args)
    if "custom_fields" in changes and current_custom:
        changes["custom_fields"] = {**current_custom, **changes["custom_fields"]}
    for name in args.remove or ():
        changes[name] = None
    return changes


def extend(args: argparse.Namespace, actor: str) -> ExtendOffer:
    return validated(
        ExtendOffer,
        {
            **_base(args, actor, "ExtendOffer"),
            "offer_id": args.offer_id or new_id(),
            "job_id": args.job or new_id(),
            "proposal_id": args.proposal or new_id(),
            "client_id": actor,  # the client extends the offer
            "freelancer_id": args.freelancer,
            "terms": terms_fields(args),
            "message": args.message,
        },
    )


def change(args: argparse.Namespace, actor: str, lookup: OfferLookup) -> ChangeOffer:
    """ChangeOffer carries complete terms: the current ones with the options applied."""
    terms = current_terms(lookup(args.offer_id))
    given = _changes(args, terms.custom_fields)
    if not given:
        raise UsageError("nothing to change: give at least one terms option (see --help)")
    try:
        changes = TermsChanges.model_validate(given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{with_option(e.field)}: {e.message}" for e in errors_from_validation(exc, "terms")
        )
        raise UsageError(f"invalid ChangeOffer: {problems}") from None
    return validated(
        ChangeOffer,
        {
            **_base(args, actor, "ChangeOffer"),
            "offer_id": args.offer_id,
            "terms": apply_changes(terms, changes),
            "message": args.message,
            "in_response_to": args.in_response_to,
        },
    )


def propose(args: argparse.Namespace, actor: str, lookup: OfferLookup) -> ProposeTerms:
    # Custom fields merge with the current ones, as in `change`: read them only when needed.
    custom = current_terms(lookup(args.offer_id)).custom_fields if args.custom_field else None
    return validated(
        ProposeTerms,
        {
            **_base(args, actor, "ProposeTerms"),
            "offer_id": args.offer_id,
            "message_id": args.message_id or new_id(),
            "changes": _changes(args, custom),
            "text": args.text,
        },
    )


def accept(args: argparse.Namespace, actor: str, lookup: OfferLookup) -> AcceptOffer:
    """Accepts the version given, else the current one (what the read API shows now)."""
    version = args.version if args.version is not None else lookup(args.offer_id)["version"]
    return validated(
        AcceptOffer,
        {**_base(args, actor, "AcceptOffer"), "offer_id": args.offer_id, "version": version},
    )


def withdraw(args: argparse.Namespace, actor: str) -> WithdrawOffer:
    return validated(
        WithdrawOffer,
        {**_base(args, actor, "WithdrawOffer"), "offer_id": args.offer_id, "reason": args.reason},
    )


def decline(args: argparse.Namespace, actor: str) -> DeclineOffer:
    return validated(
        DeclineOffer,
        {**_base(args, actor, "DeclineOffer"), "offer_id": args.offer_id, "reason": args.reason},
    )


def post(args: argparse.Namespace, actor: str) -> PostMessage:
    return validated(
        PostMessage,
        {
            **_base(args, actor, "PostMessage"),
            "offer_id": args.offer_id,
            "message_id": args.message_id or new_id(),
            "text": args.text,
        },
    )


def log_time(args: argparse.Namespace, actor: str) -> LogTime:
    return validated(
        LogTime,
        {
            **_base(args, actor, "LogTime"),
            "contract_id": args.contract_id,
            "entry_id": args.entry_id or new_id(),
            "work_date": resolve_date(args.date),
            "hours": args.hours,
            "memo": args.memo,
        },
    )


def mark_read(
    args: argparse.Namespace, actor: str, unread: Callable[[str], list[str]]
) -> MarkNotificationsRead:
    """``unread(recipient)`` lists the unread notification ids, for ``--all``."""
    recipient = args.recipient or actor
    ids = list(args.notification_ids)
    if args.all:
        ids += [i for i in unread(recipient) if i not in ids]
        if not ids:
            raise UsageError(f"{recipient} has no unread notifications")
    if not ids:
        raise UsageError("give the notification ids to mark read, or --all")
    return validated(
        MarkNotificationsRead,
        {
            **_base(args, actor, "MarkNotificationsRead"),
            "recipient_id": recipient,
            "notification_ids": ids,
        },
    )


def email_settings(args: argparse.Namespace, actor: str) -> SetNotificationPreferences:
    def kinds(raw: str) -> list[str]:
        return [kind.strip() for kind in raw.split(",") if kind.strip()]

    return validated(
        SetNotificationPreferences,
        {
            **_base(args, actor, "SetNotificationPreferences"),
            "recipient_id": args.recipient or actor,
            "email": None if args.no_email else args.email,
            "email_kinds": kinds(args.kinds),
            "digest_kinds": kinds(args.digest),
        },
    )
