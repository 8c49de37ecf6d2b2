"""`python -m bench` (and `make bench`): throughput beside a bare aiokafka baseline, latency
before and after tuning at half the measured maximum, and growth to 1M stored offers.
Figures are printed; nothing here is a test."""

from __future__ import annotations

import argparse
import time

from . import growth, latency, throughput
from .common import add_infra_options, run_id, run_with_infra, say


async def run(args: argparse.Namespace) -> None:
    tag = run_id()
    started = time.monotonic()
    profiles = args.profiles.split(",")
    rates = await throughput.run(args.n, profiles, args.keep, tag=f"{tag}t")
    # Half the maximum; the lower profile's, so every profile runs under its capacity.
    rate = args.rate or max(1.0, min(r.per_second for k, r in rates.items() if k in profiles) / 2)
    await latency.run(rate, args.latency_seconds, profiles, args.keep, tag=f"{tag}l")
    if not args.skip_growth:
        sizes = [int(s) for s in args.sizes.split(",")]
        await growth.run(
            sizes,
            args.extend_n,
            args.extend_within,
            args.keep,
            tag=f"{tag}g",
            e2e_up_to=args.e2e_up_to,
        )
    say(f"all benchmarks done in {(time.monotonic() - started) / 60:.1f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="commands per throughput run")
    parser.add_argument("--profiles", default="before,after")
    parser.add_argument("--rate", type=float, help="latency rate (default: half the maximum)")
    parser.add_argument("--latency-seconds", type=float, default=30)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--extend-n", type=int, default=200)
    parser.add_argument("--extend-within", type=float, default=180)
    parser.add_argument("--e2e-up-to", type=int, default=100_000)
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument(
        "--keep", action="store_true", help="keep the bench databases (and its own infra)"
    )
    add_infra_options(parser)
    args = parser.parse_args()
    run_with_infra(args, run(args))


if __name__ == "__main__":
    main()
