"""Fault injection: the platform under duplicated commands, malformed records, races,
kill -9 of its services, and restarts of Kafka and the database, each judged by one
verdict (faults.verdict): nothing lost, nothing doubled.

`python -m faults` runs the restart faults (they disrupt the shared infrastructure, so
they are scripts, not CI tests); tests/faults runs the others in CI.
"""
