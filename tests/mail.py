"""The tests' mail: the catcher infra/infra.py starts (SMTP_URL and its Maildir, from the
environment or infra/test.env), or one a test runs as a process of its own."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from services.mailcatcher import read_mail
from tests.infrastructure import REPO, own_infra_env


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or own_infra_env().get(name) or default


def infra_smtp_url() -> str:
    return _env("SMTP_URL", "smtp://127.0.0.1:12525")


def infra_mail_dir() -> Path:
    return REPO / _env("INFRA_DIR", ".infra/test") / "mail"


async def wait_for_mail(
    directory: Path, address: str, count: int, within: float = 20.0
) -> list[EmailMessage]:
    """The messages for `address` once there are at least `count` (fails after `within` seconds)."""
    deadline = time.monotonic() + within
    while True:
        found = read_mail(directory, address)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, (
            f"{len(found)} of {count} email(s) for {address} in {directory} after {within:.0f}s"
        )
        await asyncio.sleep(0.1)


class CatcherProcess:
    """`python -m services.mailcatcher` on a port of the test's, to stop and start at will."""

    def __init__(self, port: int, directory: Path, log: Path, *, delay_ms: int = 0) -> None:
        self.port = port
        self.delay_ms = delay_ms
        self.directory = directory
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "services.mailcatcher", "--port", str(self.port)]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--dir", str(self.directory), "--delay-ms", str(self.delay_ms)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(3) == b"220":
                        return
            except OSError:
                pass
            assert self.process.poll() is None, f"the catcher exited: {self.log.read_text()}"
            assert time.monotonic() < deadline, "the catcher did not answer within 15s"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def received(self) -> int:
        """How many messages it has kept (cheap: the files in the Maildir's new/)."""
        try:
            return len(os.listdir(self.directory / "new"))
        except FileNotFoundError:
            return 0
