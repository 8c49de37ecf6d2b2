"""A local SMTP server that keeps every message it receives, for people to read: the mail
catcher that `make run` and `make test` start on loopback (infra/infra.py), so that the
platform's emails go over real SMTP without reaching anybody.

    python -m services.mailcatcher --port 2525 --dir .infra/mail
    offers show mail bob@example.com          # what it received for an address

It is aiosmtpd's SMTP server with a handler that keeps each message in a Maildir (one file
per message, as received, plus the envelope in X-MailFrom/X-RcptTo headers). Two kinds of
address stand for a real server's refusals, for tests and trials: `reject-…@` is refused for
good (550), `busy-…@` for now (451).
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import logging
import signal
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP

log = logging.getLogger("mailcatcher")

REJECT: Final = "reject-"
BUSY: Final = "busy-"


class Catcher(Mailbox):
    def __init__(self, directory: Path, delay_seconds: float = 0.0) -> None:
        super().__init__(directory)
        self.delay_seconds = delay_seconds

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay_seconds:  # a slow server, for tests that must catch sending midway
            await asyncio.sleep(self.delay_seconds)
        answer: str = await super().handle_DATA(server, session, envelope)
        return answer

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        local = address.split("@", 1)[0].lower()
        if local.startswith(REJECT):
            return "550 5.1.1 No such mailbox here (the catcher refuses reject-* addresses)"
        if local.startswith(BUSY):
            return "451 4.3.0 Try again later (the catcher defers busy-* addresses)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def handle_message(self, message: Any) -> None:
        super().handle_message(message)
        log.info("kept a message for %s: %s", message["X-RcptTo"], message["Subject"])


async def serve(host: str, port: int, directory: Path, delay_seconds: float = 0.0) -> None:
    handler = Catcher(directory, delay_seconds)  # makes the Maildir if need be
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="mailcatcher.localhost", enable_SMTPUTF8=True),
        host,
        port,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("mail catcher on smtp://%s:%d, keeping messages in %s", host, port, directory)
    async with server:
        await stop.wait()
    log.info("mail catcher stopped")


def read_mail(directory: Path, address: str | None = None) -> list[EmailMessage]:
    """The messages kept in `directory` (for `address` only, when given), oldest first."""
    wanted = (address or "").strip().lower()
    found: list[tuple[float, EmailMessage]] = []
    # A Maildir keeps each message as a file in new/ (or cur/, once a reader has seen it).
    for path in [*directory.glob("new/*"), *directory.glob("cur/*")]:
        try:
            raw = path.read_bytes()
            received = path.stat().st_mtime
        except FileNotFoundError:
            continue  # removed while we read
        message = email.message_from_bytes(raw, _class=EmailMessage, policy=email.policy.default)
        recipients = f"{message.get('X-RcptTo', '')},{message.get('To', '')}".lower()
        if wanted and wanted not in recipients:
            continue
        found.append((received, message))
    return [message for _, message in sorted(found, key=lambda pair: pair[0])]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def main() -> None:
    parser = argparse.ArgumentParser(description="a local SMTP server that keeps what it gets")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, default=Path(".infra/mail"))
    parser.add_argument(
        "--delay-ms", type=int, default=0, help="wait this long before accepting each message"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: every SMTP line
    asyncio.run(serve(args.host, args.port, args.dir, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
