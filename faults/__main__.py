"""python -m faults [FAULT ...] — runs the named faults (default: the Kafka broker restart
and the database restart mid-stream), prints a verdict per fault, exits 1 on any FAIL.

Faults: broker-restart, database-restart, races (1,000 accept/withdraw races),
malformed (1,000 malformed records), unknown-aggregates (1,000 commands for offers and
contracts nobody created among valid traffic, then a kill -9 mid-stream), recovery (the
time a service killed with -9 takes to handle commands again). They restart the infrastructure of
infra/infra.py (KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL, and infra.py's own INFRA_DIR,
KAFKA_PORT, MONGO_PORT), so other work on the same Kafka and database is disrupted.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from .scripts import DEFAULT, FAULTS, run


def main(argv: list[str]) -> int:
    names = argv or list(DEFAULT)
    unknown = [name for name in names if name not in FAULTS]
    if unknown:
        print(f"unknown fault(s) {unknown}; choose from {sorted(FAULTS)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The outages are on purpose: aiokafka's reconnection errors say nothing new.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        passed = asyncio.run(run(names))
    except KeyboardInterrupt:
        return 130
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
