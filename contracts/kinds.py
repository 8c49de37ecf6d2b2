"""The kinds of notification (SPEC §5), shared by the notification events and the
preferences command that chooses which of them are emailed."""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = ["ALL_KINDS", "NOTIFICATION_KINDS", "EmailedKind", "NotificationKind"]

NotificationKind = Literal[
    "offer_received",
    "offer_changed",
    "offer_withdrawn",
    "offer_accepted",
    "offer_declined",
    "offer_expired",
    "offer_expiring",
    "contract_active",
    "talent_cloud_joined",
    "new_message",
    "terms_proposed",
]
NOTIFICATION_KINDS: Final[tuple[str, ...]] = get_args(NotificationKind)

ALL_KINDS: Final = "all"
EmailedKind = Literal[NotificationKind, "all"]
"""A kind to email, or ``"all"`` for every kind."""
