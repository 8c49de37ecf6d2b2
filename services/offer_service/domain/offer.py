"""The offer's state machine (SPEC §4): extend, change, withdraw, accept, decline, expire.

Each command has one rule, a pure function of the offer as stored (None: there is none), the
command, the clock and the policy, which returns the new offer with the events it produced,
or a Rejection; the expiry takes the offer and the clock. The caller stores and publishes.
Commands arrive already checked against every rule they can break on their own (terms,
dates against the day they are sent: contracts.parse_command); the rules here are the
ones that need the offer's state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from contracts import (
    AcceptOffer,
    ChangeOffer,
    DeclineOffer,
    ExtendOffer,
    OfferAccepted,
    OfferChanged,
    OfferDeclined,
    OfferExpired,
    OfferExtended,
    OfferTerms,
    OfferWithdrawn,
    RejectionCode,
    WithdrawOffer,
)
from services.rules import OfferEvent, OfferStatus, Rejection


@dataclass(frozen=True, slots=True)
class Policy:
    """What configuration decides: how long an offer stays open, how long a contract may run."""

    offer_ttl: timedelta = timedelta(days=30)
    max_contract_days: int = 180
    # Every version lives in the offer's one document, which a database caps (16 MB); 50
    # versions of the largest terms stay far below that, and far above any real negotiation.
    max_versions: int = 50


@dataclass(frozen=True, slots=True)
class OfferVersion:
    version: int
    terms: OfferTerms
    sent_at: datetime
    message: str | None = None
    in_response_to: str | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    job_id: str
    proposal_id: str
    client_id: str
    freelancer_id: str
    status: OfferStatus
    versions: tuple[OfferVersion, ...]
    expires_at: datetime
    closed_at: datetime | None = None
    close_reason: str | None = None

    @property
    def current(self) -> OfferVersion:
        return self.versions[-1]

    @property
    def version(self) -> int:
        return self.current.version

    @property
    def terms(self) -> OfferTerms:
        return self.current.terms

    def is_past_expiry(self, now: datetime) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True, slots=True)
class Decision:
    offer: Offer
    events: tuple[OfferEvent, ...]


Outcome = Decision | Rejection


def new_event_id() -> str:
    return str(uuid.uuid4())


def extend(offer: Offer | None, command: ExtendOffer, now: datetime, policy: Policy) -> Outcome:
    if offer is not None:
        return Rejection(
            RejectionCode.OFFER_EXISTS,
            f"offer {command.offer_id!r} already exists (status {offer.status}); use "
            "ChangeOffer to send different terms",
            status=offer.status,
        )
    if command.actor_id != command.client_id:
        return Rejection(
            RejectionCode.NOT_AUTHORIZED,
            f"only the client {command.client_id!r} may extend this offer, "
            f"not {command.actor_id!r}",
        )
    expires_at = now + policy.offer_ttl
    offer = Offer(
        offer_id=command.offer_id,
        job_id=command.job_id,
        proposal_id=command.proposal_id,
        client_id=command.client_id,
        freelancer_id=command.freelancer_id,
        status=OfferStatus.PENDING,
        versions=(OfferVersion(1, command.terms, now, command.message),),
        expires_at=expires_at,
    )
    event = OfferExtended(
        event_id=new_event_id(),
        occurred_at=now,
        causation_id=command.command_id,
        offer_id=offer.offer_id,
        version=1,
        job_id=offer.job_id,
        proposal_id=offer.proposal_id,
        client_id=offer.client_id,
        freelancer_id=offer.freelancer_id,
        terms=command.terms,
        message=command.message,
        expires_at=expires_at,
    )
    return Decision(offer, (event,))


def _only(offer: Offer, actor_id: str, party: str, action: str) -> Rejection | None:
    allowed = offer.client_id if party == "client" else offer.freelancer_id
    if actor_id == allowed:
        return None
    return Rejection(
        RejectionCode.NOT_AUTHORIZED,
        f"only the offer's {party} may {action} offer {offer.offer_id!r}; "
        f"{actor_id!r} is not its {party}",
    )


def _must_be_pending(offer: Offer, action: str, now: datetime) -> Rejection | None:
    if offer.status is OfferStatus.EXPIRED or (
        offer.status is OfferStatus.PENDING and offer.is_past_expiry(now)
    ):
        return Rejection(
            RejectionCode.OFFER_EXPIRED,
            f"offer {offer.offer_id!r} expired at {offer.expires_at.isoformat()}; "
            f"it can no longer {action}",
            status=OfferStatus.EXPIRED,
        )
    if offer.status is not OfferStatus.PENDING:
        return Rejection(
            RejectionCode.INVALID_STATE,
            f"offer {offer.offer_id!r} is {offer.status}, so it can no longer {action}",
            status=offer.status,
        )
    return None


def _closed(offer: Offer, status: OfferStatus, now: datetime, reason: str | None) -> Offer:
    return replace(offer, status=status, closed_at=now, close_reason=reason)


def _unknown(command: ChangeOffer | WithdrawOffer | AcceptOffer | DeclineOffer) -> Rejection:
    return Rejection(RejectionCode.UNKNOWN_OFFER, f"there is no offer {command.offer_id!r}")


def change(offer: Offer | None, command: ChangeOffer, now: datetime, policy: Policy) -> Outcome:
    if offer is None:
        return _unknown(command)
    if rejection := (
        _only(offer, command.actor_id, "client", "change")
        or _must_be_pending(offer, "be changed", now)
    ):
        return rejection
    if offer.version >= policy.max_versions:
        return Rejection(
            RejectionCode.TOO_MANY_VERSIONS,
            f"offer {offer.offer_id!r} has {offer.version} versions, the most an offer may "
            "have; withdraw it and extend a new offer to go on",
        )
    version = OfferVersion(
        offer.version + 1, command.terms, now, command.message, command.in_response_to
    )
    # "Each time you submit a contract offer, the freelancer has 30 days to accept."
    changed = replace(offer, versions=(*offer.versions, version), expires_at=now + policy.offer_ttl)
    event = OfferChanged(
        event_id=new_event_id(),
        occurred_at=now,
        causation_id=command.command_id,
        offer_id=offer.offer_id,
        version=version.version,
        client_id=offer.client_id,
        freelancer_id=offer.freelancer_id,
        terms=command.terms,
        message=command.message,
        in_response_to=command.in_response_to,
        expires_at=changed.expires_at,
    )
    return Decision(changed, (event,))


def withdraw(offer: Offer | None, command: WithdrawOffer, now: datetime, _: Policy) -> Outcome:
    if offer is None:
        return _unknown(command)
    if rejection := (
        _only(offer, command.actor_id, "client", "withdraw")
        or _must_be_pending(offer, "be withdrawn", now)
    ):
        return rejection
    event = OfferWithdrawn(
        event_id=new_event_id(),
        occurred_at=now,
        causation_id=command.command_id,
        offer_id=offer.offer_id,
        version=offer.version,
        client_id=offer.client_id,
        freelancer_id=offer.freelancer_id,
        reason=command.reason,
    )
    return Decision(_closed(offer, OfferStatus.WITHDRAWN, now, command.reason), (event,))


def accept(offer: Offer | None, command: AcceptOffer, now: datetime, _: Policy) -> Outcome:
    if offer is None:
        return _unknown(command)
    if rejection := (
        _only(offer, command.actor_id, "freelancer", "accept")
        or _must_be_pending(offer, "be accepted", now)
    ):
        return rejection
    if command.version != offer.version:
        return Rejection(
            RejectionCode.VERSION_MISMATCH,
            f"offer {offer.offer_id!r} is at version {offer.version}, not {command.version}: "
            "review the current terms and accept that version",
            status=offer.status,
        )
    event = OfferAccepted(
        event_id=new_event_id(),
        occurred_at=now,
        causation_id=command.command_id,
        offer_id=offer.offer_id,
        version=offer.version,
        client_id=offer.client_id,
        freelancer_id=offer.freelancer_id,
        terms=offer.terms,
        accepted_at=now,
    )
    return Decision(_closed(offer, OfferStatus.ACCEPTED, now, None), (event,))


def decline(offer: Offer | None, command: DeclineOffer, now: datetime, _: Policy) -> Outcome:
    if offer is None:
        return _unknown(command)
    if rejection := (
        _only(offer, command.actor_id, "freelancer", "decline")
        or _must_be_pending(offer, "be declined", now)
    ):
        return rejection
    event = OfferDeclined(
        event_id=new_event_id(),
        occurred_at=now,
        causation_id=command.command_id,
        offer_id=offer.offer_id,
        version=offer.version,
        client_id=offer.client_id,
        freelancer_id=offer.freelancer_id,
        proposal_id=offer.proposal_id,
        reason=command.reason,
    )
    return Decision(_closed(offer, OfferStatus.DECLINED, now, command.reason), (event,))


def expire(offer: Offer, *, now: datetime, sweep_id: str) -> Decision | None:
    """The sweep's decision: a pending offer past expires_at becomes expired."""
    if offer.status is not OfferStatus.PENDING or not offer.is_past_expiry(now):
        return None
    event = OfferExpired(
        event_id=new_event_id(),
        occurred_at=now,
        causation_id=sweep_id,
        offer_id=offer.offer_id,
        version=offer.version,
        client_id=offer.client_id,
        freelancer_id=offer.freelancer_id,
    )
    return Decision(_closed(offer, OfferStatus.EXPIRED, now, None), (event,))
