"""KAFKA_BOOTSTRAP_SERVERS names several brokers of a cluster as Kafka's tools do."""

from __future__ import annotations

from services.runtime.config import bootstrap_list


def test_a_comma_separated_bootstrap_becomes_one_server_each() -> None:
    assert bootstrap_list("127.0.0.1:9192, 127.0.0.1:9193,127.0.0.1:9194,") == [
        "127.0.0.1:9192",
        "127.0.0.1:9193",
        "127.0.0.1:9194",
    ]
    assert bootstrap_list("kafka:9092") == ["kafka:9092"]
