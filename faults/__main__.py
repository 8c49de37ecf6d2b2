"""python -m faults [FAULT ...] — runs the named faults (default: the Kafka broker restart
and the database restart mid-stream), prints a verdict per fault, exits 1 on any FAIL.

Faults: broker-restart, database-restart, races (1,000 accept/withdraw races),
malformed (1,000 malformed records), unknown-aggregates (1,000 commands for offers and
contracts nobody created among valid traffic, then a kill -9 mid-stream), recovery (the
time a service killed with -9 takes to handle commands again). They restart the infrastructure of
infra/infra.py (KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL, and infra.py's own INFRA_DIR,
KAFKA_PORT, MONGO_PORT), so other work on the same Kafka and database is disrupted.

On the three-broker cluster of infra/cluster.py (KAFKA_CLUSTER_PORTS), with replication
factor 3 and min.insync.replicas=2 (faults/cluster.py): broker-lost (kill -9 of one broker
mid-stream, started again later), disk-lost (the same, with its data deleted before the
restart), instances-lost (three instances of each service on 6 partitions, kill -9 of one
of each).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from .cluster import CLUSTER_FAULTS, run_on_cluster
from .scripts import DEFAULT, FAULTS, run


async def run_all(names: list[str]) -> bool:
    """The single-broker faults first, then those on the cluster, each set's verdicts
    printed at its end."""
    single = [name for name in names if name in FAULTS]
    on_cluster = [name for name in names if name in CLUSTER_FAULTS]
    passed = await run(single) if single else True
    if on_cluster:
        verdicts = await run_on_cluster(on_cluster)
        print()
        for verdict in verdicts:
            print(f"{'PASS' if verdict.passed else 'FAIL'}  {verdict.name} — {verdict.summary}")
        passed = passed and len(verdicts) == len(on_cluster) and all(v.passed for v in verdicts)
    return passed


def main(argv: list[str]) -> int:
    names = argv or list(DEFAULT)
    known = {*FAULTS, *CLUSTER_FAULTS}
    unknown = [name for name in names if name not in known]
    if unknown:
        print(f"unknown fault(s) {unknown}; choose from {sorted(known)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The outages are on purpose: aiokafka's reconnection errors say nothing new.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        passed = asyncio.run(run_all(names))
    except KeyboardInterrupt:
        return 130
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
