"""Streaming without slowing down: N ExtendOffer (default 3,000) published at once into an
empty system (offer_service and notification_service as processes, databases of the run's
own), and the completion rate over the first fifth of the completions beside the last fifth.

A completion is the freelancer's NotificationCreated seen on notifications.events
(Watcher.arrived). The rate of a fifth is its completions over the time between the
completion that ended the fifth before it (for the first fifth: the first completion) and
its own last one, so the start-up latency of the first record is in no fifth. If the cost
of a command grew with what is stored, the last fifth would be slower: the goal is a
last/first ratio of at least 0.8.

    python -m bench.streaming [--n 3000] [--within 1800]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .common import add_infra_options, drop_databases, run_id, run_with_infra, say, stamp, table
from .throughput import Rate, measure_ours, our_databases

PARTS = 5
GOAL = 0.8


@dataclass(frozen=True)
class Streamed:
    sent: int
    rate: Rate
    parts: list[float]  # completions per second in each fifth, first to last

    @property
    def ratio(self) -> float:
        return self.parts[-1] / self.parts[0] if self.parts and self.parts[0] else float("nan")


def rates_by_part(arrivals: list[float], parts: int = PARTS) -> list[float]:
    """Completions per second in each of `parts` equal runs of the sorted arrivals."""
    size = len(arrivals) // parts
    if size < 2:
        return []
    out = []
    for k in range(parts):
        last = arrivals[(k + 1) * size - 1]
        if k == 0:
            count, since = size - 1, arrivals[0]
        else:
            count, since = size, arrivals[k * size - 1]
        out.append(count / (last - since) if last > since else float("inf"))
    return out


async def run(n: int, within: float, keep: bool, tag: str | None = None) -> Streamed:
    tag = tag or run_id()
    say(f"streaming: run {tag}, {n} ExtendOffer into an empty system")
    try:
        rate = await measure_ours(tag, n, within=within, partial=True, label="streaming")
    finally:
        if not keep:
            await drop_databases(our_databases(tag))
    result = Streamed(n, rate, rates_by_part(rate.arrivals))
    report(result)
    return result


def report(result: Streamed) -> None:
    rate = result.rate
    parts = result.parts
    fmt = [f"{p:.1f}" for p in parts] or ["-"] * PARTS
    print(
        table(
            f"Streaming {result.sent:,} ExtendOffer into an empty system ({stamp()})",
            (
                "completed",
                "seconds",
                "offers/s overall",
                "first fifth /s",
                *(f"fifth {k} /s" for k in range(2, PARTS)),
                "last fifth /s",
                "last / first",
            ),
            [
                (
                    f"{rate.n:,}/{result.sent:,}",
                    f"{rate.seconds:.1f}",
                    f"{rate.per_second:.1f}",
                    *fmt,
                    f"{result.ratio:.2f}" + (" ✔" if result.ratio >= GOAL else f" (goal ≥ {GOAL})"),
                )
            ],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="ExtendOffer commands")
    parser.add_argument("--within", type=float, default=1800, help="time limit, seconds")
    add_infra_options(parser)
    args = parser.parse_args()
    run_with_infra(args, run(args.n, args.within, args.keep))


if __name__ == "__main__":
    main()
