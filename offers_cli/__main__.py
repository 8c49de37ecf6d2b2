"""`offers`: parse the command line, run it, turn expected failures into one line and an exit
code (0 done, 1 rejected/not found, 2 bad options, 3 unreachable or no answer in time)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from offers_cli import actions, demo
from offers_cli.config import Config
from offers_cli.errors import CliError
from offers_cli.parser import build_parser

RUN: dict[str, Callable[[argparse.Namespace, Config], int]] = {
    "show": actions.show,
    "watch": actions.watch_topics,
    "demo": demo.run,
}


def run(argv: Sequence[str] | None = None, config: Config | None = None) -> int:
    # aiokafka logs every failed connection attempt; the one line below says it better.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    args = build_parser().parse_args(argv)
    try:
        return RUN.get(args.action, actions.publish)(args, config or Config.from_env())
    except CliError as error:
        print(f"offers: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `offers watch | head`: the reader left. Point stdout at nothing so the interpreter's
        # final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
