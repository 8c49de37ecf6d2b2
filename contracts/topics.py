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
# Each deployment's commands to itself (contracts.internal), not for outside producers. The
# topic is named after the deployment's consumer group, as Kafka Streams names its internal
# topics after the application id: two deployments sharing a cluster, each with its own
# database, never handle each other's.
INTERNAL_SUFFIX: Final = ".internal"


def internal(group_id: str) -> str:
    return f"{group_id}{INTERNAL_SUFFIX}"


def is_internal(topic: str) -> bool:
    return topic.endswith(INTERNAL_SUFFIX)


def description(topic: str) -> str:
    if is_internal(topic):
        return "The service's commands to itself (contracts.internal); only it writes here."
    return DESCRIPTIONS[topic]


def key_of(topic: str) -> str:
    if is_internal(topic):
        return "the id of the aggregate the command is for"
    if topic in COMMANDS:
        return (
            f"the command's {KEYS[topic]}, required: a command keyed by another id, or by none, "
            "is refused (CommandRejected, code wrong_key) and never applied"
        )
    return KEYS[topic]


# Where producers publish commands.
COMMANDS: Final = (
    OFFERS_COMMANDS,
    CONTRACTS_COMMANDS,
    NEGOTIATIONS_COMMANDS,
    NOTIFICATIONS_COMMANDS,
)
# Where the services answer: every event, each refusal.
ANSWERS: Final = (
    OFFERS_EVENTS,
    CONTRACTS_EVENTS,
    TALENT_CLOUDS_EVENTS,
    NEGOTIATIONS_EVENTS,
    NOTIFICATIONS_EVENTS,
    COMMANDS_REJECTED,
)
# Everything the services write.
OUTPUTS: Final = (*ANSWERS, COMMANDS_DEAD_LETTER)

# What travels on each topic, for the AsyncAPI documents and the people who read them.
DESCRIPTIONS: Final[dict[str, str]] = {
    OFFERS_COMMANDS: "What clients and freelancers ask of an offer: extend, change, withdraw, "
    "accept, decline.",
    OFFERS_EVENTS: "What happened to offers; every event carries the terms whole.",
    CONTRACTS_COMMANDS: "Time a freelancer logs on an hourly contract.",
    CONTRACTS_EVENTS: "Contracts activated, and time logged on them.",
    TALENT_CLOUDS_EVENTS: "Freelancers who joined a Talent Cloud.",
    NEGOTIATIONS_COMMANDS: "Messages and counter-proposals posted in an offer's thread.",
    NEGOTIATIONS_EVENTS: "Messages and counter-proposals in an offer's thread.",
    NOTIFICATIONS_COMMANDS: "A recipient marking notifications read.",
    NOTIFICATIONS_EVENTS: "One NotificationCreated per (source event, recipient).",
    COMMANDS_REJECTED: "One CommandRejected per refused command, keyed like the command. A "
    "command keyed by another id than its aggregate's, or by none, is refused wrong_key and "
    "never applied: send it again keyed by its aggregate's id.",
    COMMANDS_DEAD_LETTER: "Records a service could not read or handle (unreadable, an event off "
    "its aggregate's partition, or failing 3 times), bytes unchanged; headers "
    "name the source topic, partition, offset and the error.",
}

# The field whose value is each topic's record key: all of one aggregate's records share a
# partition, so they are read in the order they were written.
KEYS: Final[dict[str, str]] = {
    OFFERS_COMMANDS: "offer_id",
    OFFERS_EVENTS: "offer_id",
    CONTRACTS_COMMANDS: "contract_id",
    CONTRACTS_EVENTS: "contract_id",
    TALENT_CLOUDS_EVENTS: "talent_cloud_id",
    NEGOTIATIONS_COMMANDS: "offer_id",
    NEGOTIATIONS_EVENTS: "offer_id",
    NOTIFICATIONS_COMMANDS: "recipient_id",
    NOTIFICATIONS_EVENTS: "recipient_id",
    COMMANDS_REJECTED: "the refused command's key",
    COMMANDS_DEAD_LETTER: "the unreadable record's key, unchanged",
}

__all__ = [
    "ANSWERS",
    "COMMANDS",
    "COMMANDS_DEAD_LETTER",
    "COMMANDS_REJECTED",
    "CONTRACTS_COMMANDS",
    "CONTRACTS_EVENTS",
    "DESCRIPTIONS",
    "INTERNAL_SUFFIX",
    "KEYS",
    "NEGOTIATIONS_COMMANDS",
    "NEGOTIATIONS_EVENTS",
    "NOTIFICATIONS_COMMANDS",
    "NOTIFICATIONS_EVENTS",
    "OFFERS_COMMANDS",
    "OFFERS_EVENTS",
    "OUTPUTS",
    "TALENT_CLOUDS_EVENTS",
    "description",
    "internal",
    "is_internal",
    "key_of",
]
