"""Kafka topic names (SPEC §1, §4, §5)."""

from typing import Final

OFFERS_COMMANDS: Final = "offers.commands"
OFFERS_EVENTS: Final = "offers.events"
CONTRACTS_COMMANDS: Final = "contracts.commands"
CONTRACTS_EVENTS: Final = "contracts.events"
TALENT_CLOUDS_EVENTS: Final = "talent-clouds.events"
NEGOTIATIONS_COMMANDS: Final = "negotiations.commands"
NEGOTIATIONS_EVENTS: Final = "negotiations.events"
NOTIFICATIONS_COMMANDS: Final = "notifications.commands"
NOTIFICATIONS_EVENTS: Final = "notifications.events"
COMMANDS_REJECTED: Final = "commands.rejected"
COMMANDS_DEAD_LETTER: Final = "commands.dead-letter"

__all__ = [
    "COMMANDS_DEAD_LETTER",
    "COMMANDS_REJECTED",
    "CONTRACTS_COMMANDS",
    "CONTRACTS_EVENTS",
    "NEGOTIATIONS_COMMANDS",
    "NEGOTIATIONS_EVENTS",
    "NOTIFICATIONS_COMMANDS",
    "NOTIFICATIONS_EVENTS",
    "OFFERS_COMMANDS",
    "OFFERS_EVENTS",
    "TALENT_CLOUDS_EVENTS",
]
