"""Crash points: where the fault tests kill a service in the middle of its work.

Exists only for the fault tests (tests/faults/test_kill_mid_batch.py). A crash point is a
named place in the write path; when the environment variable FAULT_CRASH_AT names it, the
process kills itself there with SIGKILL, as `kill -9` from outside would, but at exactly
that point instead of wherever a timer happens to strike. FAULT_CRASH_AFTER=<n> (default 1)
lets the first n-1 passes through and kills on the n-th.

The points:
  after_write    right after a batch's changes are stored (each aggregate with its outbox),
                 before anything of them is published
  before_commit  right before the batch's offsets are noted for the next commit (its
                 messages published, its outboxes marked by the records that wrote them)

Without FAULT_CRASH_AT (production) a call costs one comparison, cheaper than a dict
lookup: the environment is read once, at import.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

POINTS = ("after_write", "before_commit")

_AT = os.environ.get("FAULT_CRASH_AT") or None
_AFTER = max(1, int(os.environ.get("FAULT_CRASH_AFTER") or "1")) if _AT else 1
_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kills this process at once (SIGKILL: no cleanup, nothing flushed, no offset
    committed) when FAULT_CRASH_AT is `name`, on its FAULT_CRASH_AFTER-th pass."""
    if name != _AT:
        return
    passes = _passes[name] = _passes.get(name, 0) + 1
    if passes < _AFTER:
        return
    log.critical("crash point %s: killing this process as FAULT_CRASH_AT asks", name)
    for handler in logging.getLogger().handlers:  # the line above, before the process goes
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)
