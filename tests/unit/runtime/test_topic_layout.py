"""Which retention each group of topics gets, and the settings that choose them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import topics
from services.runtime.config import ConfigError, topic_layout_from_env
from services.runtime.refusals import rejections_kept_for
from services.runtime.topics import DAY_MS, TopicLayout


def test_events_are_kept_forever_and_the_rest_a_finite_time() -> None:
    layout = TopicLayout()
    for event_topic in (topics.OFFERS_EVENTS, topics.NOTIFICATIONS_EVENTS):
        assert layout.configs(event_topic)["retention.ms"] == "-1"
    for other in (*topics.COMMANDS, topics.internal("offer_service")):
        assert layout.configs(other)["retention.ms"] == str(7 * DAY_MS)
    assert layout.configs(topics.COMMANDS_REJECTED)["retention.ms"] == str(30 * DAY_MS)
    dead = layout.configs(topics.COMMANDS_DEAD_LETTER)
    assert dead["retention.ms"] == str(30 * DAY_MS) and int(dead["max.message.bytes"]) > 2**20


def test_the_layout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "6")
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("KAFKA_COMMANDS_RETENTION_MS", "-1")
    layout = topic_layout_from_env()
    assert (layout.partitions, layout.replication_factor, layout.min_insync_replicas) == (6, 3, 2)
    assert layout.commands_retention_ms == -1 and layout.events_retention_ms == -1
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "0")
    with pytest.raises(ConfigError, match="KAFKA_TOPIC_PARTITIONS=0 must be at least 1"):
        topic_layout_from_env()


def test_a_rejection_is_remembered_while_its_command_or_its_answer_can_be_read() -> None:
    assert rejections_kept_for(TopicLayout()) == timedelta(milliseconds=30 * DAY_MS)
    longer_commands = TopicLayout(commands_retention_ms=60 * DAY_MS, rejections_retention_ms=DAY_MS)
    assert rejections_kept_for(longer_commands) == timedelta(milliseconds=60 * DAY_MS)
    assert rejections_kept_for(TopicLayout(commands_retention_ms=-1)) is None  # forever
    assert rejections_kept_for(TopicLayout(rejections_retention_ms=-1)) is None
