"""`python -m analytics`: follow the event topics into the DuckDB warehouse.

    python -m analytics                    follow, until Ctrl-C
    python -m analytics --until-caught-up  read to each partition's current end, then exit
    python -m analytics report [--html PATH]

KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:9092), ANALYTICS_DB (.infra/analytics.duckdb),
ANALYTICS_GROUP_ID (analytics), ANALYTICS_BATCH (10000 records per transaction).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

import duckdb

from .consumer import Settings, run
from .warehouse import CannotFold, connect


def settings_from_env() -> Settings:
    return Settings(
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        database=os.environ.get("ANALYTICS_DB", ".infra/analytics.duckdb"),
        group_id=os.environ.get("ANALYTICS_GROUP_ID", "analytics"),
        batch=int(os.environ.get("ANALYTICS_BATCH", "10000")),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytics", description=__doc__.split("\n")[0])
    parser.add_argument("--until-caught-up", action="store_true", help="stop at the current ends")
    commands = parser.add_subparsers(dest="command")
    shown = commands.add_parser("report", help="print the funnel; --html writes the charts")
    shown.add_argument("--html", type=Path, help="write one self-contained HTML page here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[analytics] %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # its INFO is every rebalance step
    settings = settings_from_env()
    Path(settings.database).parent.mkdir(parents=True, exist_ok=True)
    if args.command == "report":
        from . import report  # plotly takes a while to import: not for the consumer

        try:
            connection = connect(settings.database, read_only=True)
        except duckdb.IOException as error:
            print(f"[analytics] cannot open {settings.database}: {error}", file=sys.stderr)
            return 1
        with contextlib.closing(connection):
            print(report.table(report.funnel(connection)))
            if args.html:
                report.write_html(connection, args.html)
                print(f"[analytics] wrote {args.html}", file=sys.stderr)
        return 0
    try:
        asyncio.run(run(settings, until_caught_up=args.until_caught_up))
    except CannotFold as error:
        print(f"[analytics] stopped, nothing of the batch written: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
