"""Email: how many emails per second reach a local SMTP server, and the time from command to
email, each beside the time from command to notification in the same run.

offer_service and notification_service run as processes, sending to a mail catcher of the
bench's own (services.mailcatcher, aiosmtpd, on loopback). Every freelancer first chooses
`offer_received` by email; then

* throughput: N ExtendOffers published at once while the SMTP server is away:
  NotificationCreated per second (publish → the last one seen); then the server is back, and
  emails per second is the sender draining that backlog (first to last email received);
* latency: ExtendOffers at a steady rate; per command, publish → NotificationCreated seen on
  notifications.events, and publish → the email's file in the catcher's Maildir (its mtime).

    python -m bench.email [--n 500] [--rate 5] [--seconds 30] [--poll-ms 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
import uuid
from email.parser import BytesHeaderParser
from pathlib import Path

from aiokafka import AIOKafkaProducer

from services.runtime.kafka_access import client_options
from tests.mail import CatcherProcess

from .common import (
    INFRA,
    LOG_DIR,
    Services,
    add_infra_options,
    drop_databases,
    extend_offer,
    free_port,
    hourly_terms,
    percentile,
    run_id,
    run_with_infra,
    say,
    stamp,
    table,
)
from .latency import steady
from .watch import Watcher

NAMES = ("offer_service", "notification_service")
DOMAIN = "example.com"


def address_of(freelancer_id: str) -> str:
    return f"{freelancer_id}@{DOMAIN}"


class MailWatcher:
    """The catcher's Maildir, read every 20 ms: when each address's first email arrived (its
    file's mtime, wall-clock seconds)."""

    def __init__(self, directory: Path) -> None:
        self.new = directory / "new"
        self.arrived: dict[str, float] = {}
        self.emails = 0
        self._seen: set[str] = set()
        self._parser = BytesHeaderParser()

    def poll(self) -> None:
        if not self.new.is_dir():
            return
        for path in self.new.iterdir():
            if path.name in self._seen:
                continue
            self._seen.add(path.name)
            self.emails += 1
            with path.open("rb") as file:
                headers = self._parser.parse(file)
            to = str(headers.get("To", "")).strip().lower()
            self.arrived.setdefault(to, path.stat().st_mtime)

    async def wait_for(self, count: int, within: float, label: str, since: float) -> None:
        deadline = time.time() + within
        next_line = time.time() + 5
        while True:
            await asyncio.to_thread(self.poll)
            if len(self.arrived) >= count:
                return
            now = time.time()
            if now >= deadline:
                raise TimeoutError(f"{label}: only {len(self.arrived)}/{count} emails in time")
            if now >= next_line:
                seen = len(self.arrived)
                say(f"{label}: {seen}/{count} emails ({seen / (now - since):.0f}/s so far)")
                next_line = now + 5
            await asyncio.sleep(0.02)


async def choose_email(producer: AIOKafkaProducer, freelancers: list[str]) -> None:
    for freelancer in freelancers:
        command = {
            "type": "SetNotificationPreferences",
            "command_id": str(uuid.uuid4()),
            "actor_id": freelancer,
            "recipient_id": freelancer,
            "email": address_of(freelancer),
            "email_kinds": ["offer_received"],
        }
        await producer.send(
            "notifications.commands", json.dumps(command).encode(), key=freelancer.encode()
        )
    await producer.flush()


def ms(values: list[float]) -> tuple[str, str, str]:
    scaled = [1000 * v for v in values]
    p50, p99 = percentile(scaled, 50), percentile(scaled, 99)
    return f"{p50:.0f}", f"{p99:.0f}", f"{max(scaled) if scaled else float('nan'):.0f}"


async def measure(tag: str, n: int, rate: float, seconds: float, poll_ms: int) -> list[list[str]]:
    mail_dir = LOG_DIR / f"mail-{tag}"
    catcher = CatcherProcess(free_port(), mail_dir, LOG_DIR / f"{tag}-mailcatcher.log")
    await asyncio.to_thread(catcher.start)
    # Back within a second of the server's return (the throughput run stops it).
    env = {"SMTP_URL": catcher.url, "EMAIL_POLL_MS": str(poll_ms), "EMAIL_RETRY_MAX_SECONDS": "1"}
    producer = AIOKafkaProducer(**client_options(INFRA.kafka), linger_ms=0)
    watcher = Watcher("notifications.events", f"bench-free-{tag}")  # both runs' freelancers
    mail = MailWatcher(mail_dir)
    count = max(10, int(rate * seconds))
    terms = hourly_terms()
    burst = [extend_offer(f"{tag}b", i, terms) for i in range(n)]
    paced = [extend_offer(f"{tag}p", i, terms) for i in range(count)]
    rows: list[list[str]] = []
    try:
        async with Services(tag, NAMES, extra_env=env):
            await producer.start()
            await watcher.start()
            freelancers = [c["freelancer_id"] for c in burst + paced]
            say(f"{len(freelancers)} freelancers choose offer_received by email")
            await choose_email(producer, freelancers)
            await asyncio.sleep(3)  # the preferences are stored before the offers come

            # Throughput: the notifications made while the SMTP server is away, then the
            # sender draining that backlog once it is back (first to last email received).
            label = "email throughput"
            await asyncio.to_thread(catcher.stop)
            say(f"{label}: {n} ExtendOffers at once, the SMTP server away")
            started = time.perf_counter()
            for c in burst:
                await producer.send(
                    "offers.commands", json.dumps(c).encode(), key=c["offer_id"].encode()
                )
            await producer.flush()
            last_notification = await watcher.wait_for(
                n, kind="offer_received", within=600, label=label, since=started
            )
            notifications_per_s = n / (last_notification - started)
            say(f"{label}: {notifications_per_s:.0f} notifications/s; the SMTP server is back")
            await asyncio.to_thread(catcher.start)
            await mail.wait_for(n, within=600, label=label, since=time.time())
            times = sorted(mail.arrived[address_of(c["freelancer_id"])] for c in burst)
            emails_per_s = (n - 1) / (times[-1] - times[0])
            say(f"{label}: {emails_per_s:.0f} emails/s")
            rows.append(
                [
                    f"{n} ExtendOffers at once",
                    f"{notifications_per_s:.0f}/s",
                    f"{emails_per_s:.0f}/s",
                    "",
                    "",
                    "",
                    "",
                ]
            )

            label = "email latency"
            say(f"{label}: {count} ExtendOffers at {rate:.1f}/s")
            offset = time.time() - time.perf_counter()  # perf_counter → wall clock
            sent = await steady(
                producer,
                "offers.commands",
                [(c["offer_id"], json.dumps(c).encode()) for c in paced],
                rate,
                label,
            )
            since = time.perf_counter()
            await watcher.wait_for(
                n + count, kind="offer_received", within=300, label=label, since=since
            )
            await mail.wait_for(n + count, within=300, label=label, since=since + offset)
            to_notification, to_email = [], []
            for offer_id, at in sent.items():
                freelancer = offer_id.replace("bench-offer-", "bench-free-", 1)
                notified = watcher.arrived.get((freelancer, "offer_received"))
                emailed = mail.arrived.get(address_of(freelancer))
                if notified is not None:
                    to_notification.append(notified - at)
                if emailed is not None:
                    to_email.append(emailed - (at + offset))
            rows.append(
                [
                    f"{count} ExtendOffers at {rate:.1f}/s",
                    "",
                    "",
                    *ms(to_notification)[:2],
                    *ms(to_email)[:2],
                ]
            )
            await asyncio.to_thread(mail.poll)
            doubles = mail.emails - len(mail.arrived)
            say(f"{mail.emails} emails for {len(mail.arrived)} addresses ({doubles} doubled)")
    finally:
        await producer.stop()
        await watcher.stop()
        await asyncio.to_thread(catcher.stop)
        shutil.rmtree(mail_dir, ignore_errors=True)
    return rows


async def run(n: int, rate: float, seconds: float, poll_ms: int, keep: bool) -> None:
    tag = run_id()
    say(f"email: run {tag}; EMAIL_POLL_MS={poll_ms}")
    try:
        rows = await measure(tag, n, rate, seconds, poll_ms)
    finally:
        if not keep:
            await drop_databases([f"bench_{name}_{tag}" for name in NAMES])
    print(
        table(
            f"Email to a local SMTP server, beside the notification ({stamp()})",
            (
                "run",
                "notifications/s",
                "emails/s",
                "→ notification p50 ms",
                "p99 ms",
                "→ email p50 ms",
                "p99 ms",
            ),
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="ExtendOffers of the throughput run")
    parser.add_argument("--rate", type=float, default=5, help="ExtendOffers per second")
    parser.add_argument("--seconds", type=float, default=30, help="seconds of steady sending")
    parser.add_argument("--poll-ms", type=int, default=500, help="EMAIL_POLL_MS of the service")
    add_infra_options(parser)
    args = parser.parse_args()
    run_with_infra(args, run(args.n, args.rate, args.seconds, args.poll_ms, args.keep))


if __name__ == "__main__":
    main()
