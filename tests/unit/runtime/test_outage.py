"""Which failures are outages to wait out (the record is handled again) and which are not
(it is dead-lettered), with the errors FerretDB actually returned."""

from __future__ import annotations

from aiokafka.errors import (
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    TopicAuthorizationFailedError,
)
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure

from services.runtime.consumer import is_outage
from services.runtime.uow import WriterConflict

# What FerretDB answered to an insert while its PostgreSQL was stopped (measured here).
POSTGRES_DOWN = OperationFailure(
    "[msg_insert.go:168 handler.(*Handler).MsgInsert] ... failed to connect to "
    "`user=ferretdb database=ferretdb`:\n\t127.0.0.1:54321 (127.0.0.1): dial error: dial tcp "
    "127.0.0.1:54321: connect: connection refused",
    code=1,
)


# And to a query in flight when PostgreSQL was stopped, and one while it started again.
POSTGRES_STOPPING = OperationFailure(
    "[collection.go:109 postgresql.(*collection).Query] FATAL: terminating connection due "
    "to administrator command (SQLSTATE 57P01)",
    code=1,
)
POSTGRES_STARTING = OperationFailure(
    "... failed to connect to `user=ferretdb database=ferretdb`: server error: FATAL: the "
    "database system is starting up (SQLSTATE 57P03)",
    code=1,
)


def test_a_database_behind_ferretdb_going_away_is_an_outage_to_wait_out() -> None:
    assert is_outage(POSTGRES_DOWN)
    assert is_outage(POSTGRES_STOPPING)
    assert is_outage(POSTGRES_STARTING)
    assert is_outage(AutoReconnect("connection closed"))


def test_a_refused_query_is_not_an_outage() -> None:
    # Retrying these would stall the partition forever: they are dead-lettered instead.
    assert not is_outage(OperationFailure("unknown operator: $foo", code=2))
    assert not is_outage(OperationFailure("some internal invariant failed", code=1))
    assert not is_outage(DuplicateKeyError("E11000 duplicate key", code=11000))


def test_a_second_writer_caught_by_the_revision_check_is_handled_again() -> None:
    assert is_outage(WriterConflict("offers o-1 was written by someone else"))


def test_a_partition_without_a_leader_or_replicas_on_a_cluster_is_an_outage_to_wait_out() -> None:
    # What a publish failed with while a broker of three was being replaced (faults
    # disk-lost): until then the record was skipped, its effects lost.
    assert is_outage(LeaderNotAvailableError())
    assert is_outage(NotEnoughReplicasError())


def test_a_refusal_by_kafka_that_time_does_not_mend_is_not_an_outage() -> None:
    assert not is_outage(MessageSizeTooLargeError())
    assert not is_outage(TopicAuthorizationFailedError())
