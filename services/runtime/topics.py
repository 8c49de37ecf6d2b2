"""How the topics are made: partitions, replicas, min.insync.replicas and retention per
group of topics, from the environment, created idempotently by every service at start-up.

Events are kept forever by default: SPEC §5 promises that a consumer can rebuild any
offer's history from its events topic alone, and an analytics consumer that starts a year
from now must be able to read from the beginning. Commands, refusals and dead letters are
kept a finite time: they are requests and reports, not history.

An existing topic is never changed: one with fewer partitions or replicas than configured
gets one log line saying so, and the service goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from contracts import topics

log = logging.getLogger(__name__)

DAY_MS: Final = 24 * 3600 * 1000
# Room for a dead-lettered record larger than Kafka's default 1 MiB (an operator may allow
# larger records on the command topics); one larger still is dead-lettered without its bytes.
DEAD_LETTER_MAX_BYTES: Final = 8 * 1024 * 1024
EVENTS_SUFFIX: Final = ".events"  # offers.events, contracts.events, ...


@dataclass(frozen=True, slots=True)
class TopicLayout:
    partitions: int = 3
    replication_factor: int = 1
    min_insync_replicas: int = 1
    events_retention_ms: int = -1
    commands_retention_ms: int = 7 * DAY_MS
    rejections_retention_ms: int = 30 * DAY_MS
    dead_letter_retention_ms: int = 30 * DAY_MS

    def retention_ms(self, topic: str) -> int:
        if topic.endswith(EVENTS_SUFFIX):
            return self.events_retention_ms
        if topic == topics.COMMANDS_REJECTED:
            return self.rejections_retention_ms
        if topic == topics.COMMANDS_DEAD_LETTER:
            return self.dead_letter_retention_ms
        return self.commands_retention_ms  # the command topics and the internal ones

    def configs(self, topic: str) -> dict[str, str]:
        configs = {
            "retention.ms": str(self.retention_ms(topic)),
            "min.insync.replicas": str(self.min_insync_replicas),
        }
        if topic == topics.COMMANDS_DEAD_LETTER:
            configs["max.message.bytes"] = str(DEAD_LETTER_MAX_BYTES)
        return configs


def warn_if_smaller(layout: TopicLayout, found: Mapping[str, tuple[int, int]]) -> list[str]:
    """One line per existing topic with fewer partitions or replicas than configured."""
    lines = []
    for topic, (partitions, replicas) in sorted(found.items()):
        if partitions < layout.partitions or replicas < layout.replication_factor:
            lines.append(
                f"topic {topic} has {partitions} partition(s) and {replicas} replica(s); "
                f"configured: {layout.partitions} and {layout.replication_factor}. It is left "
                "as it is: add partitions with `kafka-topics.sh --alter --partitions` (all "
                "topics a service reads must have the same number) and replicas with "
                "`kafka-reassign-partitions.sh`"
            )
    for line in lines:
        log.warning(line)
    return lines
