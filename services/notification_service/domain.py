"""notification_service's rules, pure: which event tells whom what, the local projection of
offers (who the parties are, what the offer is called, whether it is still pending) and
when an offer's expiry reminders are due. No I/O here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from contracts import (
    ContractActivated,
    FixedTerms,
    HourlyTerms,
    MessagePosted,
    NotificationKind,
    OfferAccepted,
    OfferChanged,
    OfferDeclined,
    OfferExpired,
    OfferExtended,
    OfferWithdrawn,
    TalentCloudMemberAdded,
    TermsProposed,
    ThreadClosed,
    TimeLogged,
    format_utc,
)
from services.rules import TERMINAL, OfferEvent, OfferStatus, status_after

# The events whose notifications need no projected offer.
OtherSourceEvent = ContractActivated | TimeLogged | TalentCloudMemberAdded | ThreadClosed
SourceEvent = OfferEvent | OtherSourceEvent | MessagePosted | TermsProposed
Terms = HourlyTerms | FixedTerms

PENDING: Final = OfferStatus.PENDING
MAX_TITLE: Final = 200
MAX_QUOTE: Final = 300
CURRENCY_SYMBOLS: Final = {"USD": "$", "EUR": "€", "GBP": "£"}


# --- the local projection of offers ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReminderPlan:
    """An expiry reminder: sent `lead_seconds` before the offer expires, at `due_at`."""

    lead_seconds: int
    due_at: datetime


@dataclass(frozen=True, slots=True)
class OfferInfo:
    """What this service knows of an offer, from offers.events."""

    offer_id: str
    client_id: str
    freelancer_id: str
    status: OfferStatus
    version: int
    title: str | None = None
    summary: str | None = None
    """The current terms in a few words (see `describe_terms`)."""
    expires_at: datetime | None = None
    # The expiry reminders of the pending version still to send, earliest first.
    reminders: tuple[ReminderPlan, ...] = ()

    @property
    def name(self) -> str:
        return self.title or f"offer {self.offer_id}"


def _details(event: OfferEvent) -> tuple[str | None, str | None, datetime | None]:
    """(title, summary, expires_at) as far as the event carries them."""
    if isinstance(event, OfferExtended | OfferChanged):
        return event.terms.title, describe_terms(event.terms), event.expires_at
    if isinstance(event, OfferAccepted):
        return event.terms.title, describe_terms(event.terms), None
    return None, None, None


def project(current: OfferInfo | None, event: OfferEvent) -> OfferInfo:
    """The projection after `event`, whatever order events arrive in (redelivered, late):

    * a newer version (or a first sight) replaces the details;
    * a terminal status (accepted, declined, withdrawn, expired) is final: no later
      OfferExtended/OfferChanged reverts it, whatever its version;
    * an older event only fills in details still unknown (e.g. the title, when the
      OfferWithdrawn arrived before the OfferExtended).
    """
    title, summary, expires_at = _details(event)
    status = status_after(event)
    if current is None:
        return OfferInfo(
            offer_id=event.offer_id,
            client_id=event.client_id,
            freelancer_id=event.freelancer_id,
            status=status,
            version=event.version,
            title=title,
            summary=summary,
            expires_at=expires_at,
        )
    filled = replace(
        current,
        title=current.title or title,
        summary=current.summary or summary,
        expires_at=current.expires_at or expires_at,
    )
    if current.status in TERMINAL:
        return filled
    if status in TERMINAL:
        # Final, even if it names an older version than one we saw (it cannot, in order).
        newer = event.version >= current.version
        return replace(
            filled,
            status=status,
            version=max(event.version, current.version),
            title=title if newer and title else filled.title,
            summary=summary if newer and summary else filled.summary,
        )
    if event.version > current.version:
        return replace(
            current,
            status=PENDING,
            version=event.version,
            title=title,
            summary=summary,
            expires_at=expires_at,
        )
    return filled


def apply(
    current: OfferInfo | None, event: OfferEvent, leads_seconds: Sequence[int], now: datetime
) -> OfferInfo:
    """The projection after `event`, with its expiry reminders: a new pending version (its
    OfferExtended or OfferChanged) schedules its own, replacing the older version's; a
    terminal status drops them; any other event leaves them as they were."""
    offer = project(current, event)
    if offer.status in TERMINAL:
        return replace(offer, reminders=())
    newer = current is None or event.version > current.version
    if newer and is_current_pending(offer, event):
        assert offer.expires_at is not None  # an OfferExtended/OfferChanged carries it
        return replace(
            offer, reminders=tuple(reminder_schedule(offer.expires_at, leads_seconds, now))
        )
    return offer


def is_current_pending(info: OfferInfo, event: OfferEvent) -> bool:
    """Whether `event` (an OfferExtended/OfferChanged) is the offer's live version."""
    return (
        isinstance(event, OfferExtended | OfferChanged)
        and info.status == PENDING
        and info.version == event.version
    )


# --- expiry reminders ------------------------------------------------------------------------


def reminder_schedule(
    expires_at: datetime, leads_seconds: Sequence[int], now: datetime
) -> list[ReminderPlan]:
    """One reminder per lead time before `expires_at`.

    None once the offer has expired. Of the lead times already past (an event that arrived
    late, or a lead longer than the offer's whole window), only the one nearest to expiry is
    kept, due now: the freelancer gets one late reminder, not a burst of them.
    """
    if expires_at <= now:
        return []
    plans = sorted(
        (ReminderPlan(lead, expires_at - timedelta(seconds=lead)) for lead in set(leads_seconds)),
        key=lambda plan: plan.due_at,
    )
    future = [plan for plan in plans if plan.due_at > now]
    past = [plan for plan in plans if plan.due_at <= now]
    late = [ReminderPlan(past[-1].lead_seconds, now)] if past else []
    return late + future


def reminder_due(offer: OfferInfo, now: datetime) -> tuple[OfferInfo, ReminderPlan | None]:
    """The offer with its due reminders taken off, and the one to send of them: the one
    nearest to expiry (a service down past two lead times sends one late reminder, not a
    burst), or none once the offer is no longer pending or has expired by the clock."""
    due = [plan for plan in offer.reminders if plan.due_at <= now]
    if not due:
        return offer, None
    if offer.status != PENDING or offer.expires_at is None or offer.expires_at <= now:
        return replace(offer, reminders=()), None
    return replace(offer, reminders=offer.reminders[len(due) :]), due[-1]


def human_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and (seconds % size == 0 or seconds >= 2 * size):
            count = round(seconds / size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


# --- notifications ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Planned:
    """One notification to create: who gets it, and what it says."""

    recipient_id: str
    kind: NotificationKind
    title: str
    body: str
    offer_id: str | None = None
    contract_id: str | None = None


def money(amount: Decimal, currency: str) -> str:
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {currency}"


def describe_terms(terms: Terms) -> str:
    """ "$45.00/h hourly (up to 30 h/week), 2026-12-01 to 2027-03-31"."""
    period = f"{terms.start_date.isoformat()} to {terms.end_date.isoformat()}"
    if isinstance(terms, HourlyTerms):
        limit = (
            f" (up to {terms.weekly_limit_hours} h/week)"
            if terms.weekly_limit_hours is not None
            else ""
        )
        return f"{money(terms.hourly_rate, terms.currency)}/h hourly{limit}, {period}"
    count = len(terms.milestones)
    return (
        f"{money(terms.total_amount, terms.currency)} fixed price in {count} "
        f"milestone{'s' if count != 1 else ''}, {period}"
    )


def _day(value: datetime) -> str:
    return value.date().isoformat()


def _headline(label: str, name: str) -> str:
    title = f"{label}: {name}"
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


def _quote(text: str | None) -> str:
    if not text or not text.strip():
        return ""
    text = " ".join(text.split())
    if len(text) > MAX_QUOTE:
        text = text[: MAX_QUOTE - 1] + "…"
    return f' "{text}"'


def _reason(reason: str | None) -> str:
    return f" Reason: {_quote(reason).strip()}" if reason and reason.strip() else ""


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "))


def notifications_for(
    event: SourceEvent, offer: OfferInfo | None, previous: OfferInfo | None = None
) -> list[Planned]:
    """The notifications an event produces (SPEC §5's table), one per recipient.

    `offer` is the projection after the event (for offer events) or the offer the event is
    about (negotiation events; required for them: it names the other party). `previous` is
    the projection before an offer event, to say what changed.
    """
    match event:
        case OfferExtended():
            message = f" Message:{_quote(event.message)}" if event.message else ""
            return [
                Planned(
                    event.freelancer_id,
                    "offer_received",
                    _headline("Offer received", event.terms.title),
                    f"{event.client_id} offered you {describe_terms(event.terms)}; "
                    f"accept by {_day(event.expires_at)}.{message}",
                    offer_id=event.offer_id,
                )
            ]
        case OfferChanged():
            was = ""
            if previous is not None and previous.summary and previous.version < event.version:
                now_summary = describe_terms(event.terms)
                was = (
                    f" (was {previous.summary})"
                    if previous.summary != now_summary
                    else " (same rate and dates)"
                )
            message = f" Message:{_quote(event.message)}" if event.message else ""
            return [
                Planned(
                    event.freelancer_id,
                    "offer_changed",
                    _headline("Offer changed", event.terms.title),
                    f"{event.client_id} changed the offer (version {event.version}): now "
                    f"{describe_terms(event.terms)}{was}; accept by "
                    f"{_day(event.expires_at)}.{message}",
                    offer_id=event.offer_id,
                )
            ]
        case OfferWithdrawn():
            name = offer.name if offer else f"offer {event.offer_id}"
            return [
                Planned(
                    event.freelancer_id,
                    "offer_withdrawn",
                    _headline("Offer withdrawn", name),
                    f"{event.client_id} withdrew the offer {name!r}; it can no longer be "
                    f"accepted.{_reason(event.reason)}",
                    offer_id=event.offer_id,
                )
            ]
        case OfferAccepted():
            return [
                Planned(
                    event.client_id,
                    "offer_accepted",
                    _headline("Offer accepted", event.terms.title),
                    f"{event.freelancer_id} accepted your offer (version {event.version}): "
                    f"{describe_terms(event.terms)}. The contract starts on "
                    f"{event.terms.start_date.isoformat()}.",
                    offer_id=event.offer_id,
                )
            ]
        case OfferDeclined():
            name = offer.name if offer else f"offer {event.offer_id}"
            return [
                Planned(
                    event.client_id,
                    "offer_declined",
                    _headline("Offer declined", name),
                    f"{event.freelancer_id} declined your offer {name!r}; their proposal "
                    f"is withdrawn.{_reason(event.reason)}",
                    offer_id=event.offer_id,
                )
            ]
        case OfferExpired():
            name = offer.name if offer else f"offer {event.offer_id}"
            title = _headline("Offer expired", name)
            return [
                Planned(
                    event.client_id,
                    "offer_expired",
                    title,
                    f"Your offer {name!r} to {event.freelancer_id} expired without an "
                    "answer. Send a new offer if you still want to hire them.",
                    offer_id=event.offer_id,
                ),
                Planned(
                    event.freelancer_id,
                    "offer_expired",
                    title,
                    f"The offer {name!r} from {event.client_id} expired; it can no longer "
                    "be accepted.",
                    offer_id=event.offer_id,
                ),
            ]
        case ContractActivated():
            terms = event.terms
            summary = describe_terms(terms)
            title = _headline("Contract active", terms.title)
            time_log = (
                f" You can log time from {terms.start_date.isoformat()}."
                if isinstance(terms, HourlyTerms)
                else ""
            )
            return [
                Planned(
                    event.client_id,
                    "contract_active",
                    title,
                    f"Your contract with {event.freelancer_id} is active: {summary}.",
                    offer_id=event.offer_id,
                    contract_id=event.contract_id,
                ),
                Planned(
                    event.freelancer_id,
                    "contract_active",
                    title,
                    f"Your contract with {event.client_id} is active: {summary}.{time_log}",
                    offer_id=event.offer_id,
                    contract_id=event.contract_id,
                ),
            ]
        case TalentCloudMemberAdded():
            return [
                Planned(
                    event.freelancer_id,
                    "talent_cloud_joined",
                    _headline("Joined Talent Cloud", event.talent_cloud_id),
                    f"You joined the Talent Cloud {event.talent_cloud_id} through contract "
                    f"{event.contract_id}; its clients can now hire you again directly.",
                    contract_id=event.contract_id,
                )
            ]
        case MessagePosted() | TermsProposed():
            if offer is None:
                return []
            other = other_party(offer, event.sender_id)
            if other is None:
                return []
            if isinstance(event, MessagePosted):
                return [
                    Planned(
                        other,
                        "new_message",
                        _headline("New message", offer.name),
                        f"{event.sender_id} wrote about {offer.name!r}:{_quote(event.text)}",
                        offer_id=event.offer_id,
                    )
                ]
            changes = "; ".join(
                f"{d.field} {_value(d.current)} → {_value(d.proposed)}" for d in event.differences
            )
            text = f" Note:{_quote(event.text)}" if event.text else ""
            return [
                Planned(
                    other,
                    "terms_proposed",
                    _headline("Terms proposed", offer.name),
                    f"{event.sender_id} proposes different terms for {offer.name!r}: "
                    f"{changes or 'see the thread'}.{text}",
                    offer_id=event.offer_id,
                )
            ]
        case _:
            return []  # TimeLogged, ThreadClosed: nobody needs telling


def other_party(offer: OfferInfo, sender_id: str) -> str | None:
    if sender_id == offer.client_id:
        return offer.freelancer_id
    if sender_id == offer.freelancer_id:
        return offer.client_id
    return None


def expiring_reminder(offer: OfferInfo, now: datetime) -> Planned:
    assert offer.expires_at is not None
    left = human_duration((offer.expires_at - now).total_seconds())
    terms = f" {offer.client_id} offered you {offer.summary}." if offer.summary else ""
    return Planned(
        offer.freelancer_id,
        "offer_expiring",
        _headline("Offer expiring", offer.name),
        f"The offer {offer.name!r} expires in {left}, at {format_utc(offer.expires_at)}: "
        f"accept, decline or reply before then.{terms}",
        offer_id=offer.offer_id,
    )


# --- the inbox: its numbering and email preferences --------------------------------------------


@dataclass(frozen=True, slots=True)
class Preferences:
    """What a recipient chose (SetNotificationPreferences), and when; none chosen: no
    email."""

    recipient_id: str
    email: str | None
    email_kinds: tuple[str, ...]
    digest_kinds: tuple[str, ...]
    chosen_at: datetime | None = None

    def emails(self, kind: str) -> bool:
        return self.email is not None and (ALL in self.email_kinds or kind in self.email_kinds)


@dataclass(frozen=True, slots=True)
class Inbox:
    """A recipient's inbox: the email preferences chosen for it (None: none, no email), and
    the counter that numbered its notifications before they were numbered by their Notify's
    place (`Placed.number`). One document, so that a notification costs one read of it, and
    none once it is in the cache; it exists once preferences are chosen (or was counted
    before)."""

    recipient_id: str
    last_seq: int = 0
    preferences: Preferences | None = None


ALL: Final = "all"


@dataclass(frozen=True, slots=True)
class EmailPlan:
    """One notification's email: to whom, from when it may go, and the digest it joins
    (None: an email of its own)."""

    to: str
    send_after: datetime
    digest: str | None = None


def digest_window(created_at: datetime, digest_seconds: int) -> tuple[datetime, datetime]:
    """The window of EMAIL_DIGEST_SECONDS a notification falls in (aligned to the epoch, so
    every notification of one window joins the same digest, whatever order they come in)."""
    epoch = created_at.timestamp()
    start = datetime.fromtimestamp(epoch - epoch % digest_seconds, UTC)
    return start, start + timedelta(seconds=digest_seconds)


def email_plan(
    preferences: Preferences | None, kind: str, created_at: datetime, digest_seconds: int
) -> EmailPlan | None:
    """Whether a notification of `kind` made at `created_at` is emailed, with the address
    current now (a later change of address does not move it)."""
    if preferences is None or preferences.email is None or not preferences.emails(kind):
        return None
    if kind in preferences.digest_kinds:
        start, end = digest_window(created_at, digest_seconds)
        return EmailPlan(preferences.email, end, f"{preferences.email} {format_utc(start)}")
    return EmailPlan(preferences.email, created_at)
