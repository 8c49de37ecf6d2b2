"""What every service's rules share, pure: a refusal, ids derived from ids, and what an
offer's status is after each of its events. Nothing here does I/O, and nothing here imports
a module that does (tests/unit/test_rules_are_pure.py checks), so the deciders that build on
it run anywhere, at unit speed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from contracts import (
    FieldError,
    OfferAccepted,
    OfferChanged,
    OfferDeclined,
    OfferExpired,
    OfferExtended,
    OfferWithdrawn,
    RejectionCode,
)

OfferEvent = (
    OfferExtended | OfferChanged | OfferWithdrawn | OfferDeclined | OfferExpired | OfferAccepted
)
OFFER_EVENTS: Final = (
    OfferExtended,
    OfferChanged,
    OfferWithdrawn,
    OfferDeclined,
    OfferExpired,
    OfferAccepted,
)


class OfferStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self is not OfferStatus.PENDING


TERMINAL: Final = frozenset(status for status in OfferStatus if status.terminal)

# The status an offer has after each of its events: the one fold every projection uses.
_STATUS_AFTER: Final[dict[type[OfferEvent], OfferStatus]] = {
    OfferExtended: OfferStatus.PENDING,
    OfferChanged: OfferStatus.PENDING,
    OfferAccepted: OfferStatus.ACCEPTED,
    OfferDeclined: OfferStatus.DECLINED,
    OfferWithdrawn: OfferStatus.WITHDRAWN,
    OfferExpired: OfferStatus.EXPIRED,
}


def status_after(event: OfferEvent) -> OfferStatus:
    return _STATUS_AFTER[type(event)]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a command is refused (a domain decision): becomes one CommandRejected."""

    code: RejectionCode
    message: str
    errors: tuple[FieldError, ...] = field(default=())
    status: str | None = None


# Ids derived from other ids (rejections, contracts, notifications) come from this
# namespace, so the same input always yields the same id, however often it is redelivered.
ID_NAMESPACE: Final = uuid.UUID("6f1b8f2e-4a57-4b8e-9d0c-2f3f5d8f6a10")


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(parts)))
