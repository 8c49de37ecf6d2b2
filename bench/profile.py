"""Where the services' time goes on the throughput path: `ours` of bench.throughput (N
ExtendOffer through offer_service and notification_service as processes) while `py-spy
record` samples both processes, from the first publish until the last NotificationCreated.

Printed per service: how many of the sampled thread stacks found the event loop (main)
thread busy, waiting (in the loop's `select`, or a worker thread waiting for work: py-spy's
idle detection lets those through) or another thread busy; then, among the busy main
thread's stacks, the top frames by own samples (the function on top of the stack), by total
samples (the function anywhere on the stack, less the entry chain on every stack) and by
total samples among the project's own functions (services/, contracts/).

    python -m bench.profile [--n 1000] [--rate 100] [--top 15] [--nonblocking] [--idle]
                            [--raw DIR]

py-spy reads the target's memory with ptrace: it needs the same user and, where
/proc/sys/kernel/yama/ptrace_scope is 1 or more, CAP_SYS_PTRACE (root, or
`--cap-add SYS_PTRACE` in a container). Without it the script says so and still measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from .common import REPO, Services, add_infra_options, drop_databases, run_id, run_with_infra, say
from .throughput import measure_ours, our_databases

SAMPLED = ("offer_service", "notification_service")


def py_spy() -> str | None:
    """py-spy beside this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Recording:
    service: str
    pid: int
    output: Path
    log: Path
    process: asyncio.subprocess.Process
    error: str = ""


# Own frames that are waiting, not working, which py-spy's idle detection lets through: the
# event loop's select, and worker threads waiting for work (anyio's, and the executor's).
WAITING = (
    "EpollSelector.select (",
    "Condition.wait (",
    "_worker (concurrent/futures/thread.py",
)


# The project's own frames (after short(): a path from the repository's root).
PROJECT = re.compile(r"\((services|contracts)/")


@dataclass(frozen=True)
class Profile:
    """One service's samples: `busy` are the event loop (main) thread's stacks not waiting,
    and the top frames are theirs."""

    service: str
    stacks: int
    waiting: int
    other_threads: int
    busy: int
    own: list[tuple[str, int]]
    total: list[tuple[str, int]]
    project: list[tuple[str, int]]
    everywhere: int


def short(frame: str) -> str:
    """`function (path:line)` with the path from the package on (site-packages or the repo)."""
    for marker in ("site-packages/", f"{REPO}/"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            return f"{head}({tail.split(marker, 1)[1]}"
    return frame


def read_raw(service: str, text: str, top: int) -> Profile:
    """py-spy's raw (collapsed) format with --threads: `thread (tid): name;frame;…;frame
    count` per line, the outermost frame first. The top frames by own and by total samples
    of the main thread's busy stacks; frames on every one of them (runpy, uvicorn, asyncio's
    run_forever…) are left out of the total list."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    stacks = waiting = other_threads = busy = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, *frames = stack.split(";")
        stacks += count
        if not frames or frames[-1].startswith(WAITING):
            waiting += count
            continue
        if not thread.endswith(": MainThread"):
            other_threads += count
            continue
        busy += count
        frames = [short(frame) for frame in frames]
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    everywhere = [frame for frame, count in total.items() if count == busy]
    for frame in everywhere:
        del total[frame]
    return Profile(
        service,
        stacks,
        waiting,
        other_threads,
        busy,
        own.most_common(top),
        total.most_common(top),
        [(f, c) for f, c in total.most_common() if PROJECT.search(f)][:top],
        len(everywhere),
    )


class Sampler:
    """`py-spy record` on each of the services' processes while the block runs."""

    def __init__(self, rate: int, nonblocking: bool, idle: bool, directory: Path) -> None:
        self.rate = rate
        self.flags = [*(["--nonblocking"] if nonblocking else []), *(["--idle"] if idle else [])]
        self.directory = directory
        self.recordings: list[Recording] = []
        self.unavailable = ""

    @asynccontextmanager
    async def around(self, running: Services) -> AsyncIterator[None]:
        binary = py_spy()
        if binary is None:
            self.unavailable = (
                "py-spy is not installed (it is a dev dependency: `make install`, or "
                "`pip install py-spy`); measuring without sampling"
            )
            say(f"profile: {self.unavailable}")
            yield
            return
        for service in running.processes:
            if service.name not in SAMPLED or service.process is None:
                continue
            pid = service.process.pid
            output = self.directory / f"{service.name}.txt"
            command = [binary, "record", "--pid", str(pid), "--format", "raw"]
            command += ["--output", str(output), "--rate", str(self.rate)]
            command += ["--function", "--threads"]
            say(f"profile: {' '.join(command[1:] + self.flags)}")
            log = self.directory / f"{service.name}.log"
            with log.open("wb") as stderr:
                process = await asyncio.create_subprocess_exec(
                    *command, *self.flags, stdout=stderr, stderr=subprocess.STDOUT
                )
            self.recordings.append(Recording(service.name, pid, output, log, process))
        await asyncio.sleep(1)  # py-spy attaches
        for recording in self.recordings:
            if recording.process.returncode is not None:
                recording.error = self._failed(recording)
        try:
            yield
        finally:
            for recording in self.recordings:
                if recording.process.returncode is None:
                    # py-spy writes its output on SIGINT, as on Ctrl-C.
                    recording.process.send_signal(signal.SIGINT)
            for recording in self.recordings:
                try:
                    await asyncio.wait_for(recording.process.wait(), 60)
                except TimeoutError:
                    recording.process.kill()
                    await recording.process.wait()
                if not recording.error and not recording.output.exists():
                    recording.error = self._failed(recording)

    @staticmethod
    def _failed(recording: Recording) -> str:
        stderr = recording.log.read_text(errors="replace").split("Stack backtrace:")[0]
        stderr = " ".join(stderr.split())[-800:]
        hint = ""
        if "ermission" in stderr or "ptrace" in stderr.lower():
            scope = Path("/proc/sys/kernel/yama/ptrace_scope")
            level = scope.read_text().strip() if scope.exists() else "absent"
            hint = (
                f" — py-spy needs ptrace on pid {recording.pid}: kernel.yama.ptrace_scope is "
                f"{level}, running as uid {os.getuid()}; it needs the target's user, and "
                "CAP_SYS_PTRACE where ptrace_scope ≥ 1 (a container: --cap-add SYS_PTRACE; "
                "root without it is refused too)"
            )
        return f"py-spy could not sample {recording.service}: {stderr or 'no output'}{hint}"

    def profiles(self, top: int) -> list[Profile]:
        out = []
        for recording in self.recordings:
            if recording.error:
                continue
            text = recording.output.read_text(errors="replace")
            out.append(read_raw(recording.service, text, top))
        return out


def report(profiles: list[Profile], errors: list[str], rate_line: str) -> None:
    print(f"\n### Profile of ours on the throughput path ({rate_line})\n")
    for error in errors:
        print(f"NOT SAMPLED: {error}\n")
    for profile in profiles:
        print(
            f"{profile.service}: {profile.stacks} thread stacks sampled: {profile.busy} of the "
            f"event loop (main) thread busy, {profile.waiting} waiting (select, idle worker "
            f"threads), {profile.other_threads} of other threads busy"
        )
        for title, frames in (
            ("own samples", profile.own),
            ("total samples", profile.total),
            ("total samples, the project's code (services/, contracts/)", profile.project),
        ):
            print(f"  top frames by {title}, as a share of the busy main thread's:")
            for frame, count in frames:
                share = count / profile.busy if profile.busy else 0.0
                print(f"    {share:6.1%} {count:6d}  {frame}")
        print(f"  ({profile.everywhere} frames on every busy stack left out of the total list)\n")


async def run(args: argparse.Namespace) -> None:
    tag = run_id()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as scratch:
        directory = Path(args.raw or scratch)
        sampler = Sampler(args.rate, args.nonblocking, args.idle, directory)
        try:
            rate = await measure_ours(tag, args.n, around=sampler.around)
        finally:
            if not args.keep:
                await drop_databases(our_databases(tag))
        errors = [r.error for r in sampler.recordings if r.error]
        if sampler.unavailable:
            errors.append(sampler.unavailable)
        report(
            sampler.profiles(args.top),
            errors,
            f"{rate.n} offers at {rate.per_second:.1f}/s, py-spy at {args.rate} Hz",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="ExtendOffer commands")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15, help="frames per list")
    parser.add_argument(
        "--nonblocking", action="store_true", help="py-spy does not pause the process to sample"
    )
    parser.add_argument("--idle", action="store_true", help="include idle threads' stacks")
    parser.add_argument("--raw", help="keep py-spy's raw output (<service>.txt) in this folder")
    add_infra_options(parser)
    args = parser.parse_args()
    if args.raw:
        Path(args.raw).mkdir(parents=True, exist_ok=True)
    run_with_infra(args, run(args))


if __name__ == "__main__":
    main()
