"""Events (SPEC §5) and their per-topic unions.

Every event carries ``event_id`` (stable across redelivery), ``schema_version``,
``occurred_at`` and ``causation_id`` (the command or event that caused it). Events that carry
terms carry them whole. ``KEY_FIELD`` names the field that is the Kafka key;
``CommandRejected`` is keyed by the rejected command's key instead.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import Field, StringConstraints, TypeAdapter

from contracts import topics
from contracts.base import (
    Date,
    EmailAddress,
    Event,
    Hours,
    Id,
    NonBlank,
    PositiveInt,
    UtcDateTime,
)
from contracts.commands import CommandType
from contracts.errors import FieldError
from contracts.kinds import EmailedKind, NotificationKind
from contracts.terms import OfferTerms, TermsChanges, TermsDifference

__all__ = [
    "COMMAND_REJECTED_ADAPTER",
    "CONTRACT_EVENT_ADAPTER",
    "EVENT_ADAPTERS",
    "EVENT_TYPES",
    "NEGOTIATION_EVENT_ADAPTER",
    "NOTIFICATION_EVENT_ADAPTER",
    "OFFER_EVENT_ADAPTER",
    "TALENT_CLOUD_EVENT_ADAPTER",
    "AnyEvent",
    "CommandRejected",
    "ContractActivated",
    "ContractEvent",
    "MessagePosted",
    "NegotiationEvent",
    "NotificationCreated",
    "NotificationEvent",
    "NotificationKind",
    "NotificationPreferencesChanged",
    "OfferAccepted",
    "OfferChanged",
    "OfferDeclined",
    "OfferEvent",
    "OfferExpired",
    "OfferExtended",
    "OfferWithdrawn",
    "RejectionCode",
    "TalentCloudEvent",
    "TalentCloudMemberAdded",
    "TermsProposed",
    "ThreadClosed",
    "TimeLogged",
]

OfferMessageText = Annotated[str, Field(max_length=5_000)]
Reason = Annotated[str, Field(max_length=1_000)]


# --- offers.events (key: offer_id) -----------------------------------------------------------


class _OfferEvent(Event):
    KEY_FIELD = "offer_id"
    offer_id: Id
    version: PositiveInt
    client_id: Id
    freelancer_id: Id


class OfferExtended(_OfferEvent):
    """An offer was extended: version 1, pending until expires_at."""

    type: Literal["OfferExtended"] = "OfferExtended"
    job_id: Id
    proposal_id: Id
    terms: OfferTerms
    message: OfferMessageText | None = None
    expires_at: UtcDateTime


class OfferChanged(_OfferEvent):
    """The client changed a pending offer: a new version with new terms and a new expiry."""

    type: Literal["OfferChanged"] = "OfferChanged"
    terms: OfferTerms
    message: OfferMessageText | None = None
    in_response_to: Id | None = None
    expires_at: UtcDateTime


class OfferWithdrawn(_OfferEvent):
    """The client withdrew a pending offer."""

    type: Literal["OfferWithdrawn"] = "OfferWithdrawn"
    reason: Reason | None = None


class OfferDeclined(_OfferEvent):
    """The freelancer declined; their proposal counts as withdrawn."""

    type: Literal["OfferDeclined"] = "OfferDeclined"
    proposal_id: Id
    reason: Reason | None = None


class OfferExpired(_OfferEvent):
    """A pending offer reached expires_at without an answer."""

    type: Literal["OfferExpired"] = "OfferExpired"
    reason: Reason | None = None


class OfferAccepted(_OfferEvent):
    """The freelancer accepted the current version; a contract follows."""

    type: Literal["OfferAccepted"] = "OfferAccepted"
    terms: OfferTerms
    """Exactly the terms of the accepted version."""
    accepted_at: UtcDateTime


# --- contracts.events (key: contract_id) -----------------------------------------------------


class ContractActivated(Event):
    """A contract was activated from an accepted offer, on its accepted terms."""

    KEY_FIELD = "contract_id"
    type: Literal["ContractActivated"] = "ContractActivated"
    contract_id: Id
    offer_id: Id
    offer_version: PositiveInt
    job_id: Id
    client_id: Id
    freelancer_id: Id
    terms: OfferTerms
    activated_at: UtcDateTime


class TimeLogged(Event):
    """Hours were logged on an hourly contract."""

    KEY_FIELD = "contract_id"
    type: Literal["TimeLogged"] = "TimeLogged"
    contract_id: Id
    entry_id: Id
    work_date: Date
    hours: Hours


# --- talent-clouds.events (key: talent_cloud_id) ---------------------------------------------


class TalentCloudMemberAdded(Event):
    """A freelancer joined a Talent Cloud (once, whatever the number of contracts)."""

    KEY_FIELD = "talent_cloud_id"
    type: Literal["TalentCloudMemberAdded"] = "TalentCloudMemberAdded"
    talent_cloud_id: Id
    freelancer_id: Id
    contract_id: Id


# --- negotiations.events (key: offer_id) -----------------------------------------------------


class MessagePosted(Event):
    """A message was posted in an offer's negotiation thread."""

    KEY_FIELD = "offer_id"
    type: Literal["MessagePosted"] = "MessagePosted"
    offer_id: Id
    message_id: Id
    sender_id: Id
    text: Annotated[str, StringConstraints(min_length=1, max_length=5_000), NonBlank]
    sent_at: UtcDateTime


class TermsProposed(Event):
    """A party proposed changed terms in the thread, with their differences
    from the current terms.
    """

    KEY_FIELD = "offer_id"
    type: Literal["TermsProposed"] = "TermsProposed"
    offer_id: Id
    message_id: Id
    sender_id: Id
    changes: TermsChanges
    differences: list[TermsDifference]
    text: OfferMessageText | None = None
    sent_at: UtcDateTime


class ThreadClosed(Event):
    """An offer's thread closed because the offer did (accepted, declined, withdrawn, expired)."""

    KEY_FIELD = "offer_id"
    type: Literal["ThreadClosed"] = "ThreadClosed"
    offer_id: Id
    reason: Literal["accepted", "declined", "withdrawn", "expired"]


# --- notifications.events (key: recipient_id) ------------------------------------------------


class NotificationCreated(Event):
    """A notification for one recipient about one event (or expiry reminder)."""

    KEY_FIELD = "recipient_id"
    type: Literal["NotificationCreated"] = "NotificationCreated"
    notification_id: Id
    recipient_id: Id
    kind: NotificationKind
    offer_id: Id | None = None
    contract_id: Id | None = None
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    body: Annotated[str, Field(max_length=10_000)]
    created_at: UtcDateTime
    source_event_id: Id
    """The event (or reminder) this notification is for; one per (source, recipient)."""


class NotificationPreferencesChanged(Event):
    """A recipient's email preferences, as they now stand (SetNotificationPreferences)."""

    KEY_FIELD = "recipient_id"
    type: Literal["NotificationPreferencesChanged"] = "NotificationPreferencesChanged"
    recipient_id: Id
    email: EmailAddress | None
    """Where emails go; None: no email at all."""
    email_kinds: list[EmailedKind]
    digest_kinds: list[NotificationKind]
    changed_at: UtcDateTime


# --- commands.rejected (key: the rejected command's key) -------------------------------------


class RejectionCode(StrEnum):
    INVALID_COMMAND = "invalid_command"
    UNKNOWN_OFFER = "unknown_offer"
    UNKNOWN_CONTRACT = "unknown_contract"
    NOT_AUTHORIZED = "not_authorized"
    OFFER_EXISTS = "offer_exists"
    INVALID_STATE = "invalid_state"
    OFFER_EXPIRED = "offer_expired"
    VERSION_MISMATCH = "version_mismatch"
    THREAD_CLOSED = "thread_closed"
    NOT_HOURLY = "not_hourly"
    OUTSIDE_CONTRACT_DATES = "outside_contract_dates"
    WEEKLY_LIMIT_EXCEEDED = "weekly_limit_exceeded"
    WRONG_KEY = "wrong_key"
    TOO_MANY_VERSIONS = "too_many_versions"


class CommandRejected(Event):
    """A refused command. ``command_id``/``actor_id`` are ``None`` only when the command's own
    were missing or not valid ids (then ``causation_id`` is ``None`` too, else it equals
    ``command_id``). ``errors`` is filled for ``invalid_command``, ``status`` (the current
    status) for ``invalid_state``."""

    type: Literal["CommandRejected"] = "CommandRejected"
    causation_id: Id | None  # type: ignore[assignment]
    command_id: Id | None
    command_type: CommandType
    actor_id: Id | None
    code: Annotated[RejectionCode, Field(strict=False)]  # lax: the value string is accepted
    message: Annotated[str, Field(max_length=10_000)]
    errors: list[FieldError] = Field(default_factory=list)
    status: Annotated[str, Field(max_length=64)] | None = None

    @property
    def key(self) -> str:
        raise TypeError("CommandRejected is keyed by the rejected command's key")


# --- unions ----------------------------------------------------------------------------------

OfferEvent = Annotated[
    OfferExtended | OfferChanged | OfferWithdrawn | OfferDeclined | OfferExpired | OfferAccepted,
    Field(discriminator="type"),
]
ContractEvent = Annotated[ContractActivated | TimeLogged, Field(discriminator="type")]
TalentCloudEvent = Annotated[TalentCloudMemberAdded, Field(discriminator="type")]
NegotiationEvent = Annotated[
    MessagePosted | TermsProposed | ThreadClosed, Field(discriminator="type")
]
NotificationEvent = Annotated[
    NotificationCreated | NotificationPreferencesChanged, Field(discriminator="type")
]
RejectionEvent = Annotated[CommandRejected, Field(discriminator="type")]
AnyEvent = (
    OfferExtended
    | OfferChanged
    | OfferWithdrawn
    | OfferDeclined
    | OfferExpired
    | OfferAccepted
    | ContractActivated
    | TimeLogged
    | TalentCloudMemberAdded
    | MessagePosted
    | TermsProposed
    | ThreadClosed
    | NotificationCreated
    | NotificationPreferencesChanged
    | CommandRejected
)

OFFER_EVENT_ADAPTER: Final[
    TypeAdapter[
        OfferExtended | OfferChanged | OfferWithdrawn | OfferDeclined | OfferExpired | OfferAccepted
    ]
] = TypeAdapter(OfferEvent)
CONTRACT_EVENT_ADAPTER: Final[TypeAdapter[ContractActivated | TimeLogged]] = TypeAdapter(
    ContractEvent
)
TALENT_CLOUD_EVENT_ADAPTER: Final[TypeAdapter[TalentCloudMemberAdded]] = TypeAdapter(
    TalentCloudEvent
)
NEGOTIATION_EVENT_ADAPTER: Final[TypeAdapter[MessagePosted | TermsProposed | ThreadClosed]] = (
    TypeAdapter(NegotiationEvent)
)
NOTIFICATION_EVENT_ADAPTER: Final[
    TypeAdapter[NotificationCreated | NotificationPreferencesChanged]
] = TypeAdapter(NotificationEvent)
COMMAND_REJECTED_ADAPTER: Final[TypeAdapter[CommandRejected]] = TypeAdapter(RejectionEvent)
EVENT_ADAPTERS: Final[dict[str, TypeAdapter[Any]]] = {
    topics.OFFERS_EVENTS: OFFER_EVENT_ADAPTER,
    topics.CONTRACTS_EVENTS: CONTRACT_EVENT_ADAPTER,
    topics.TALENT_CLOUDS_EVENTS: TALENT_CLOUD_EVENT_ADAPTER,
    topics.NEGOTIATIONS_EVENTS: NEGOTIATION_EVENT_ADAPTER,
    topics.NOTIFICATIONS_EVENTS: NOTIFICATION_EVENT_ADAPTER,
    topics.COMMANDS_REJECTED: COMMAND_REJECTED_ADAPTER,
}
"""The adapter for each events topic: ``EVENT_ADAPTERS[topic].validate_json(raw)``. An unknown
``type`` raises a ``ValidationError`` of type ``union_tag_invalid`` at the root."""

EVENT_TOPICS: Final[dict[str, str]] = {
    event.__name__: topic
    for topic, union in (
        (topics.OFFERS_EVENTS, OfferEvent),
        (topics.CONTRACTS_EVENTS, ContractEvent),
        (topics.TALENT_CLOUDS_EVENTS, TalentCloudEvent),
        (topics.NEGOTIATIONS_EVENTS, NegotiationEvent),
        (topics.NOTIFICATIONS_EVENTS, NotificationEvent),
        (topics.COMMANDS_REJECTED, RejectionEvent),
    )
    for event in (get_args(get_args(union)[0]) or (get_args(union)[0],))
}
"""The topic each event type is published on."""

EVENT_TYPES: Final[dict[str, type[Event]]] = {
    cls.__name__: cls
    for cls in (
        OfferExtended,
        OfferChanged,
        OfferWithdrawn,
        OfferDeclined,
        OfferExpired,
        OfferAccepted,
        ContractActivated,
        TimeLogged,
        TalentCloudMemberAdded,
        MessagePosted,
        TermsProposed,
        ThreadClosed,
        NotificationCreated,
        NotificationPreferencesChanged,
        CommandRejected,
    )
}
