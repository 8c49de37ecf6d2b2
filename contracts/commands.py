"""Commands (SPEC §4) and their per-topic unions. Parse them with ``contracts.parsing``."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, get_args

from pydantic import Field, StringConstraints, TypeAdapter

from contracts import topics
from contracts.base import (
    Command,
    Date,
    EmailAddress,
    FreeText,
    Hours,
    Id,
    NonBlank,
    PositiveInt,
)
from contracts.kinds import EmailedKind, NotificationKind
from contracts.terms import OfferTerms, TermsChanges

__all__ = [
    "COMMAND_ADAPTERS",
    "COMMAND_TOPICS",
    "COMMAND_TYPES",
    "CONTRACT_COMMAND_ADAPTER",
    "NEGOTIATION_COMMAND_ADAPTER",
    "NOTIFICATION_COMMAND_ADAPTER",
    "OFFER_COMMAND_ADAPTER",
    "AcceptOffer",
    "AnyCommand",
    "ChangeOffer",
    "CommandType",
    "ContractCommand",
    "DeclineOffer",
    "ExtendOffer",
    "LogTime",
    "MarkNotificationsRead",
    "NegotiationCommand",
    "NotificationCommand",
    "OfferCommand",
    "PostMessage",
    "ProposeTerms",
    "SetNotificationPreferences",
    "WithdrawOffer",
]

OfferMessageText = Annotated[str, Field(max_length=5_000), FreeText]
Reason = Annotated[str, Field(max_length=1_000), FreeText]
ChatText = Annotated[str, StringConstraints(min_length=1, max_length=5_000), FreeText, NonBlank]


# --- offers.commands (key: offer_id) ---------------------------------------------------------


class ExtendOffer(Command):
    """A client offers a contract to a freelancer: version 1 of the offer, pending for 30 days."""

    KEY_FIELD = "offer_id"
    type: Literal["ExtendOffer"] = "ExtendOffer"
    offer_id: Id
    job_id: Id
    proposal_id: Id
    client_id: Id
    freelancer_id: Id
    terms: OfferTerms
    message: OfferMessageText | None = None


class ChangeOffer(Command):
    """The client replaces a pending offer's terms (complete): a new version and
    a new 30-day window.
    """

    KEY_FIELD = "offer_id"
    type: Literal["ChangeOffer"] = "ChangeOffer"
    offer_id: Id
    terms: OfferTerms
    message: OfferMessageText | None = None
    in_response_to: Id | None = None
    """The ``message_id`` of the ``TermsProposed`` this change answers, if any."""


class WithdrawOffer(Command):
    """The client takes back a pending offer."""

    KEY_FIELD = "offer_id"
    type: Literal["WithdrawOffer"] = "WithdrawOffer"
    offer_id: Id
    reason: Reason | None = None


class AcceptOffer(Command):
    """The freelancer accepts the version they reviewed; a contract is activated."""

    KEY_FIELD = "offer_id"
    type: Literal["AcceptOffer"] = "AcceptOffer"
    offer_id: Id
    version: PositiveInt
    """The offer version the freelancer reviewed."""


class DeclineOffer(Command):
    """The freelancer turns a pending offer down."""

    KEY_FIELD = "offer_id"
    type: Literal["DeclineOffer"] = "DeclineOffer"
    offer_id: Id
    reason: Reason | None = None


# --- negotiations.commands (key: offer_id) ---------------------------------------------------


class PostMessage(Command):
    """A party writes in the offer's negotiation thread while the offer is pending."""

    KEY_FIELD = "offer_id"
    type: Literal["PostMessage"] = "PostMessage"
    offer_id: Id
    message_id: Id
    text: ChatText


class ProposeTerms(Command):
    """A party proposes changed terms in the thread (a counter-proposal); the offer is
    unchanged. The service checks them against the current terms: see ``proposed_terms``.
    """

    KEY_FIELD = "offer_id"
    type: Literal["ProposeTerms"] = "ProposeTerms"
    offer_id: Id
    message_id: Id
    changes: TermsChanges
    text: OfferMessageText | None = None


# --- contracts.commands (key: contract_id) ---------------------------------------------------


class LogTime(Command):
    """The freelancer logs hours worked on an hourly contract."""

    KEY_FIELD = "contract_id"
    type: Literal["LogTime"] = "LogTime"
    contract_id: Id
    entry_id: Id
    work_date: Date
    hours: Hours
    memo: Reason | None = None


# --- notifications.commands (key: recipient_id) ----------------------------------------------


class MarkNotificationsRead(Command):
    """A recipient marks some of their notifications read."""

    KEY_FIELD = "recipient_id"
    type: Literal["MarkNotificationsRead"] = "MarkNotificationsRead"
    recipient_id: Id
    notification_ids: Annotated[list[Id], Field(min_length=1, max_length=500)]


def _chat_digest() -> list[NotificationKind]:
    return ["new_message"]


class SetNotificationPreferences(Command):
    """A recipient chooses which notifications reach them by email, and at which address.

    A kind is emailed when it is in ``email_kinds`` (or ``email_kinds`` is ``["all"]``);
    of those, the kinds in ``digest_kinds`` are gathered into one digest email per
    ``EMAIL_DIGEST_SECONDS`` instead of one email each. ``email: null`` stops all email.
    Each command replaces the recipient's preferences as a whole.
    """

    KEY_FIELD = "recipient_id"
    type: Literal["SetNotificationPreferences"] = "SetNotificationPreferences"
    recipient_id: Id
    email: EmailAddress | None
    email_kinds: Annotated[list[EmailedKind], Field(max_length=20)]
    digest_kinds: Annotated[list[NotificationKind], Field(max_length=20)] = Field(
        default_factory=_chat_digest
    )


# --- unions ----------------------------------------------------------------------------------

OfferCommand = Annotated[
    ExtendOffer | ChangeOffer | WithdrawOffer | AcceptOffer | DeclineOffer,
    Field(discriminator="type"),
]
NegotiationCommand = Annotated[PostMessage | ProposeTerms, Field(discriminator="type")]
ContractCommand = Annotated[LogTime, Field(discriminator="type")]
NotificationCommand = Annotated[
    MarkNotificationsRead | SetNotificationPreferences, Field(discriminator="type")
]
AnyCommand = (
    ExtendOffer
    | ChangeOffer
    | WithdrawOffer
    | AcceptOffer
    | DeclineOffer
    | PostMessage
    | ProposeTerms
    | LogTime
    | MarkNotificationsRead
    | SetNotificationPreferences
)

CommandType = Literal[
    "ExtendOffer",
    "ChangeOffer",
    "WithdrawOffer",
    "AcceptOffer",
    "DeclineOffer",
    "PostMessage",
    "ProposeTerms",
    "LogTime",
    "MarkNotificationsRead",
    "SetNotificationPreferences",
]
COMMAND_TYPES: Final[dict[str, type[Command]]] = {c.__name__: c for c in get_args(AnyCommand)}

OFFER_COMMAND_ADAPTER: Final[
    TypeAdapter[ExtendOffer | ChangeOffer | WithdrawOffer | AcceptOffer | DeclineOffer]
] = TypeAdapter(OfferCommand)
NEGOTIATION_COMMAND_ADAPTER: Final[TypeAdapter[PostMessage | ProposeTerms]] = TypeAdapter(
    NegotiationCommand
)
CONTRACT_COMMAND_ADAPTER: Final[TypeAdapter[LogTime]] = TypeAdapter(ContractCommand)
NOTIFICATION_COMMAND_ADAPTER: Final[
    TypeAdapter[MarkNotificationsRead | SetNotificationPreferences]
] = TypeAdapter(NotificationCommand)
# The topic each command type is published on (SPEC §4).
COMMAND_TOPICS: Final[dict[str, str]] = {
    command.__name__: topic
    for topic, union in (
        (topics.OFFERS_COMMANDS, OfferCommand),
        (topics.NEGOTIATIONS_COMMANDS, NegotiationCommand),
        (topics.CONTRACTS_COMMANDS, ContractCommand),
        (topics.NOTIFICATIONS_COMMANDS, NotificationCommand),
    )
    for command in (get_args(get_args(union)[0]) or (get_args(union)[0],))
}
COMMAND_ADAPTERS: Final[dict[str, TypeAdapter[Any]]] = {
    topics.OFFERS_COMMANDS: OFFER_COMMAND_ADAPTER,
    topics.NEGOTIATIONS_COMMANDS: NEGOTIATION_COMMAND_ADAPTER,
    topics.CONTRACTS_COMMANDS: CONTRACT_COMMAND_ADAPTER,
    topics.NOTIFICATIONS_COMMANDS: NOTIFICATION_COMMAND_ADAPTER,
}
"""The adapter for each commands topic. Every one is a union discriminated on ``type`` (even
with one member), so an unknown ``type`` is reported as such: see :func:`parse_command`."""
