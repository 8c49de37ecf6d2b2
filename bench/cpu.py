"""CPU time a measurement cost, and who spent it, from /proc: the services (by pid), this
bench process (the plain pipelines' stages, the publisher and the watcher), and the servers
all paths share: Kafka (the JVM running kafka.Kafka), FerretDB and PostgreSQL (by process
name; a PostgreSQL backend that ends meanwhile is counted in its parent's reaped time).

Wall-clock rates on 2 cores hide where the work is: the services, the servers and the bench
share the cores, so a path that makes the database work harder is slowed in the services'
figures too. CPU seconds per offer say what each path asks of each part.

Linux only (/proc); elsewhere `CpuClock.read` returns nothing and the table says so. Every
FerretDB, PostgreSQL and Kafka process on the machine is counted: another idle set of
servers (`make run`'s) adds next to nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BENCH = "bench"
SERVERS = ("Kafka", "FerretDB", "PostgreSQL")


def _seconds(pid: int) -> float | None:
    """User + system time of the process and of its reaped children (None: gone)."""
    try:
        return seconds_in((PROC / str(pid) / "stat").read_text())
    except OSError:
        return None


def seconds_in(stat: str) -> float:
    """The CPU seconds a /proc/<pid>/stat line counts: utime, stime, cutime and cstime."""
    # After the command name in parentheses (which may hold spaces and parentheses): state
    # is field 3, so fields 14 to 17 are at 11 to 14 here.
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / TICKS


def _server_of(pid: int) -> str | None:
    try:
        name = (PROC / str(pid) / "comm").read_text().strip()
        if name == "ferretdb":
            return "FerretDB"
        if name == "postgres":
            return "PostgreSQL"
        if name == "java" and b"kafka.Kafka" in (PROC / str(pid) / "cmdline").read_bytes():
            return "Kafka"
    except OSError:
        return None
    return None


@dataclass
class CpuClock:
    """CPU seconds by part, read now and again later; `named` are the processes to name
    (a service's pid); this process is BENCH."""

    named: Mapping[str, int] = field(default_factory=dict)

    def read(self) -> dict[str, float]:
        if not PROC.is_dir():
            return {}
        spent: dict[str, float] = {}
        labels = {pid: label for label, pid in self.named.items()}
        labels[os.getpid()] = BENCH
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            label = labels.get(pid) or _server_of(pid)
            seconds = None if label is None else _seconds(pid)
            if label is not None and seconds is not None:
                spent[label] = spent.get(label, 0.0) + seconds
        return spent


def spent_between(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {label: after[label] - before.get(label, 0.0) for label in after}


__all__ = ["BENCH", "SERVERS", "CpuClock", "spent_between"]
