"""Commands the services send themselves, on internal topics (one per deployment of each
service, named after its consumer group: topics.internal).

Everything that changes an aggregate reaches it as a record on the aggregate's own
partition, so that the handler of that partition is its one writer: the expiry sweep asks
for an expiry, an acceptance asks for a contract, the reminder sweep asks for a reminder,
a source event asks each recipient's inbox for a notification. These are not part of the
public contract: the internal topics are written only by their service (restrict them by
ACL in production), and a public topic's adapter does not know these types, so one sent
there is refused as an unknown command type.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field, PositiveInt, TypeAdapter

from contracts.base import Date, Hours, Id, Message, UtcDateTime
from contracts.commands import Reason
from contracts.events import NotificationCreated, OfferAccepted


class InternalCommand(Message):
    """``KEY_FIELD`` names the field that is the record key: the aggregate it changes."""

    KEY_FIELD: ClassVar[str]

    type: str
    command_id: Id

    @property
    def key(self) -> str:
        value = getattr(self, self.KEY_FIELD)
        assert isinstance(value, str)
        return value


# --- offer_service ---------------------------------------------------------------------------


class ExpireOffer(InternalCommand):
    """The expiry sweep found the offer due: expire it if it still is."""

    KEY_FIELD = "offer_id"
    type: Literal["ExpireOffer"] = "ExpireOffer"
    offer_id: Id


class ActivateContract(InternalCommand):
    """An offer was accepted: activate its one contract (keyed by the contract)."""

    KEY_FIELD = "contract_id"
    type: Literal["ActivateContract"] = "ActivateContract"
    contract_id: Id
    job_id: Id
    accepted: OfferAccepted


class JoinTalentCloud(InternalCommand):
    """A contract in a Talent Cloud was activated: add its freelancer (keyed by the cloud)."""

    KEY_FIELD = "talent_cloud_id"
    type: Literal["JoinTalentCloud"] = "JoinTalentCloud"
    talent_cloud_id: Id
    freelancer_id: Id
    contract_id: Id
    causation_id: Id  # the acceptance that led here, for TalentCloudMemberAdded


class RecordTimeEntry(InternalCommand):
    """Hours were counted on the contract: store the entry that brought them (keyed by the
    contract). Sent in the contract's own write, so an entry is stored only once counted."""

    KEY_FIELD = "contract_id"
    type: Literal["RecordTimeEntry"] = "RecordTimeEntry"
    contract_id: Id
    entry_id: Id
    work_date: Date
    hours: Hours
    memo: Reason | None = None
    logged_at: UtcDateTime


# --- every service's internal topic ----------------------------------------------------------


class ReleaseParked(InternalCommand):
    """A parked command's wait ran out: the aggregate's writer refuses what is still
    waiting past its deadline, in order (services.runtime.parking)."""

    KEY_FIELD = "aggregate_id"
    type: Literal["ReleaseParked"] = "ReleaseParked"
    aggregate_id: Id


# --- notification_service ------------------------------------------------------------------


class Notify(InternalCommand):
    """One notification for one recipient, as its NotificationCreated will say it: keyed by
    the recipient, so the inbox's writer stores it (once) and publishes the event."""

    KEY_FIELD = "recipient_id"
    type: Literal["Notify"] = "Notify"
    recipient_id: Id
    notification: NotificationCreated


class SendReminder(InternalCommand):
    """The reminder sweep found a reminder due (keyed by its offer, the reminder's writer)."""

    KEY_FIELD = "offer_id"
    type: Literal["SendReminder"] = "SendReminder"
    offer_id: Id
    reminder_id: Id
    version: PositiveInt


class CloseEmails(InternalCommand):
    """The email sender has recorded the outcome of these notifications' email (sent, or
    refused for good): the inbox's writer takes them off the waiting list (keyed by the
    recipient, whose partition alone writes the inbox)."""

    KEY_FIELD = "recipient_id"
    type: Literal["CloseEmails"] = "CloseEmails"
    recipient_id: Id
    notification_ids: Annotated[list[Id], Field(min_length=1, max_length=1000)]
    outcome: Literal["sent", "failed"]


OffersInternal = Annotated[
    ExpireOffer | ActivateContract | JoinTalentCloud | RecordTimeEntry | ReleaseParked,
    Field(discriminator="type"),
]
NegotiationsInternal = Annotated[ReleaseParked, Field(discriminator="type")]
NotificationsInternal = Annotated[
    Notify | SendReminder | CloseEmails | ReleaseParked, Field(discriminator="type")
]

# What each service sends itself, on the internal topic of its deployment (topics.internal).
INTERNAL_ADAPTERS: Final[dict[str, TypeAdapter[Any]]] = {
    "offer_service": TypeAdapter(OffersInternal),
    "messaging_service": TypeAdapter(NegotiationsInternal),
    "notification_service": TypeAdapter(NotificationsInternal),
}
