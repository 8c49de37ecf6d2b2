"""bench.cpu: CPU seconds by part, read from /proc."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cpu import BENCH, TICKS, CpuClock, seconds_in, spent_between

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def test_the_four_times_are_read_after_a_name_with_spaces_and_parentheses() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime ...
    stat = f"42 (a (b) c) R 1 1 1 0 -1 0 0 0 0 0 {TICKS} {2 * TICKS} {3 * TICKS} 0 20 0"
    assert seconds_in(stat) == 6.0


@needs_proc
def test_this_process_is_the_bench_and_its_work_is_counted() -> None:
    clock = CpuClock()
    before = clock.read()
    until = time.process_time() + 0.2
    while time.process_time() < until:
        pass
    spent = spent_between(before, clock.read())
    assert 0.15 <= spent[BENCH] <= 1.0


@needs_proc
def test_a_named_process_is_counted_apart_from_the_bench() -> None:
    burn = "import time\nu = time.process_time() + 0.3\nwhile time.process_time() < u: pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn + "time.sleep(30)"])
    try:
        clock = CpuClock({"worker": child.pid})
        before = clock.read()
        deadline = time.monotonic() + 20
        while clock.read()["worker"] - before["worker"] < 0.25:
            assert time.monotonic() < deadline, "the child's CPU time never grew"
            time.sleep(0.05)
        spent = spent_between(before, clock.read())
    finally:
        child.kill()
        child.wait()
    assert spent["worker"] >= 0.25
    assert spent[BENCH] < 0.25  # the child's work is not the bench's
