"""`python -m bench` (and `make bench`): throughput beside two plain two-hop pipelines (per
record and batched), streaming 3,000 commands without slowing down, latency at half the
measured maximum (and at lower steady rates, with the CPU a command costs there), resuming
after kill -9 of each service, and the cost of a command and of
the expiry sweep with up to 1M stored offers. Figures are printed; nothing
here is a test."""

from __future__ import annotations

import argparse
import time

from . import growth, latency, resume, streaming, throughput
from .common import add_infra_options, run_id, run_with_infra, say


async def run(args: argparse.Namespace) -> None:
    tag = run_id()
    started = time.monotonic()
    repeats = await throughput.run(args.n, args.repeat, args.keep, tag=f"{tag}t")
    if not args.skip_streaming:
        await streaming.run(args.stream_n, args.stream_within, args.keep, tag=f"{tag}s")
    # Half the maximum: the lowest of our measured rates, so the run stays under capacity;
    # and the lower steady rates beside it, to show where the goals still hold.
    rate = args.rate or max(1.0, min(r.ours.per_second for r in repeats) / 2)
    lower = [float(r) for r in args.latency_rates.split(",") if r and float(r) < rate]
    await latency.run([*lower, rate], args.latency_seconds, args.keep, tag=f"{tag}l")
    if not args.skip_resume:
        await resume.run(args.resume_rate, args.resume_steady, args.keep, tag=f"{tag}r")
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
    parser.add_argument("--n", type=int, default=1000, help="commands per throughput run")
    parser.add_argument(
        "--repeat", type=int, default=2, help="throughput repeats (both plain pipelines and ours)"
    )
    parser.add_argument("--stream-n", type=int, default=3000, help="commands streamed")
    parser.add_argument("--stream-within", type=float, default=1800)
    parser.add_argument("--skip-streaming", action="store_true")
    parser.add_argument("--rate", type=float, help="latency rate (default: half the maximum)")
    parser.add_argument("--latency-seconds", type=float, default=30)
    parser.add_argument(
        "--latency-rates", default="20,60", help="lower steady rates measured beside it"
    )
    parser.add_argument(
        "--resume-rate", type=float, default=5, help="commands/s of each type while killing"
    )
    parser.add_argument("--resume-steady", type=float, default=3, help="seconds before a kill")
    parser.add_argument("--skip-resume", action="store_true")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--extend-n", type=int, default=200)
    parser.add_argument("--extend-within", type=float, default=180)
    parser.add_argument("--e2e-up-to", type=int, default=1_000_000)
    parser.add_argument("--skip-growth", action="store_true")
    add_infra_options(parser)
    args = parser.parse_args()
    run_with_infra(args, run(args))


if __name__ == "__main__":
    main()
