"""`python -m services` (what `make run` starts): the three services and the gateway as child
processes in the foreground. Ctrl-C or SIGTERM stops them all; if one exits, the others are
stopped too, so a half-running system never passes for a working one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from .processes import GATEWAY, SERVICES


def main() -> int:
    children = {
        name: subprocess.Popen([sys.executable, "-m", f"services.{name}"])
        for name in (*SERVICES, GATEWAY)
    }
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(
        "offers platform: offer_service :8001, messaging_service :8002, "
        "notification_service :8003 (GET /health); the page for both parties at "
        "http://127.0.0.1:8000/ (the gateway); Ctrl-C stops all",
        file=sys.stderr,
    )
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(
                    f"{name} exited with code {child.returncode}; stopping the others",
                    file=sys.stderr,
                )
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.2)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
