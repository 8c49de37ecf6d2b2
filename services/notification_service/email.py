"""Email for the notifications each recipient chose (SetNotificationPreferences), sent off
the consumer path.

The inbox's writer stores a notification's email in the notification's own document, in the
same write (`email_state: waiting`, with the address current then): once the notification
exists its email cannot be lost. This background sender, one per instance, reads the waiting
list by equality on `email_state` and `email_mode` (an index serves it), sends over SMTP,
and records each outcome by an insert of a unique `_id` into `email_sends` (atomic on
FerretDB too): no writer of the inbox is needed to know what was sent. It then asks the
recipient's partition (CloseEmails) to take the emails off the waiting list; until that is
done, the record keeps the next pass from sending them again, after a restart as well.

* A transient failure (no connection, a 4xx) is retried with backoff, doubling to
  EMAIL_RETRY_MAX_SECONDS; nothing else waits for it: the notification was stored and
  published long before.
* A permanent refusal (5xx) is recorded as `failed`, with the server's code and text, and
  not retried.
* The one gap SMTP leaves: a crash after the server's 250 and before our record sends that
  email again after the restart. Its `Message-ID` derives from the notification (or the
  digest), so mail clients fold the two.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape
from typing import Any, Final
from urllib.parse import unquote, urlencode, urlsplit

import aiosmtplib
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry, Counter, Gauge
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from contracts.internal import CloseEmails
from services.rules import derived_id
from services.runtime.clock import utc_now
from services.runtime.config import ConfigError, env_int
from services.runtime.documents import Document, Documents

from .store import DIGEST, EMAIL_MODE, EMAIL_STATE, NOW, WAITING

log = logging.getLogger(__name__)

SENT: Final = "sent"
SMTP_URL: Final = "smtp://127.0.0.1:2525"
SENDER: Final = "Offers <notifications@offers.localhost>"
PAGE_URL: Final = "http://127.0.0.1:8000"
FAILED: Final = "failed"
# Notifications read from the waiting list per pass: an outage's backlog is worked through
# in pages, oldest first within each.
PAGE: Final = 500
# A connection idle this long is not reused: servers close idle ones (aiosmtpd after 300 s,
# many providers sooner), and a send over a closed one would look like the server down.
IDLE_SECONDS: Final = 30.0
# The page's link shows this role for these kinds (the others name no role).
FREELANCER_KINDS: Final = frozenset(
    {"offer_received", "offer_changed", "offer_withdrawn", "offer_expiring", "talent_cloud_joined"}
)
CLIENT_KINDS: Final = frozenset({"offer_accepted", "offer_declined"})


@dataclass(frozen=True, slots=True)
class EmailSettings:
    smtp_url: str = SMTP_URL
    sender: str = SENDER
    page_url: str = PAGE_URL
    digest_seconds: int = 900
    poll_seconds: float = 0.5
    retry_first_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> EmailSettings:
        settings = cls(
            smtp_url=os.environ.get("SMTP_URL", SMTP_URL).strip(),
            sender=os.environ.get("EMAIL_FROM", SENDER).strip() or SENDER,
            page_url=os.environ.get("EMAIL_PAGE_URL", PAGE_URL).strip().rstrip("/"),
            digest_seconds=env_int("EMAIL_DIGEST_SECONDS", 900, minimum=1),
            poll_seconds=env_int("EMAIL_POLL_MS", 500, minimum=10) / 1000,
            retry_max_seconds=env_int("EMAIL_RETRY_MAX_SECONDS", 60, minimum=1),
        )
        settings.server()  # a URL that cannot work stops the service at once, with the reason
        return settings

    def server(self) -> Server | None:
        """Where to send, from SMTP_URL (empty: email is off)."""
        if not self.smtp_url:
            return None
        url = urlsplit(self.smtp_url)
        if url.scheme not in ("smtp", "smtps") or not url.hostname:
            raise ConfigError(
                f"SMTP_URL={self.smtp_url!r} must look like smtp://host:port or "
                "smtps://user:password@host:465 (empty: no email)"
            )
        secure = url.scheme == "smtps"
        return Server(
            host=url.hostname,
            port=url.port or (465 if secure else 25),
            tls=secure,
            username=unquote(url.username) if url.username else None,
            password=unquote(url.password) if url.password else None,
        )

    @property
    def sender_domain(self) -> str:
        address = self.sender.rsplit("<", 1)[-1].rstrip(">")
        return address.rsplit("@", 1)[-1] or "offers.localhost"


@dataclass(frozen=True, slots=True)
class Server:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None = field(repr=False)

    def describe(self) -> str:
        return f"{'smtps' if self.tls else 'smtp'}://{self.host}:{self.port}"


# --- the messages ----------------------------------------------------------------------------


def message_id(settings: EmailSettings, *parts: str) -> str:
    """The same Message-ID for every send of one notification's (or digest's) email."""
    return f"<{derived_id('email', *parts)}@{settings.sender_domain}>"


def page_link(settings: EmailSettings, document: Document) -> str:
    params: dict[str, str] = {}
    kind = document["kind"]
    role = "freelancer" if kind in FREELANCER_KINDS else "client" if kind in CLIENT_KINDS else None
    if role:
        params.update({"as": document["recipient_id"], "role": role})
    if document.get("offer_id"):
        params["offer"] = document["offer_id"]
    return f"{settings.page_url}/" + (f"?{urlencode(params)}" if params else "")


def unsubscribe_link(settings: EmailSettings, recipient_id: str) -> str:
    return f"{settings.page_url}/?{urlencode({'as': recipient_id, 'settings': 'email'})}"


def _envelope(
    settings: EmailSettings, to: str, recipient_id: str, subject: str, msgid: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(utc_now())
    message["Message-ID"] = msgid
    message["List-Unsubscribe"] = f"<{unsubscribe_link(settings, recipient_id)}>"
    message["Auto-Submitted"] = "auto-generated"  # no vacation replies to a notification
    return message


def _footer(settings: EmailSettings, recipient_id: str) -> tuple[str, str]:
    link = unsubscribe_link(settings, recipient_id)
    text = f"You get this email because you chose it. Change or stop it: {link}"
    html = (
        f'<p style="color:#666;font-size:small">You get this email because you chose it. '
        f'<a href="{escape(link)}">Change or stop it</a>.</p>'
    )
    return text, html


def notification_email(settings: EmailSettings, document: Document) -> EmailMessage:
    """One notification's email: its title as the subject, its text, a link to the offer."""
    link = page_link(settings, document)
    message = _envelope(
        settings,
        document["email_to"],
        document["recipient_id"],
        document["title"],
        message_id(settings, document["_id"]),
    )
    footer_text, footer_html = _footer(settings, document["recipient_id"])
    message.set_content(f"{document['body']}\n\nOpen it: {link}\n\n-- \n{footer_text}\n")
    message.add_alternative(
        f"<!doctype html><html><body><h2>{escape(document['title'])}</h2>"
        f"<p>{escape(document['body'])}</p>"
        f'<p><a href="{escape(link)}">Open it</a></p>{footer_html}</body></html>',
        subtype="html",
    )
    return message


def digest_email(settings: EmailSettings, documents: Sequence[Document]) -> EmailMessage:
    """Several notifications of one recipient, gathered over one EMAIL_DIGEST_SECONDS."""
    first = documents[0]
    count = len(documents)
    subject = f"{count} notification{'s' if count != 1 else ''}: {first['title']}"
    if len(subject) > 200:
        subject = subject[:199] + "…"
    message = _envelope(
        settings,
        first["email_to"],
        first["recipient_id"],
        subject,
        message_id(settings, "digest", first["recipient_id"], first["email_digest"]),
    )
    footer_text, footer_html = _footer(settings, first["recipient_id"])
    text = "\n\n".join(f"{d['title']}\n{d['body']}\n{page_link(settings, d)}" for d in documents)
    html = "".join(
        f"<h3>{escape(d['title'])}</h3><p>{escape(d['body'])}</p>"
        f'<p><a href="{escape(page_link(settings, d))}">Open it</a></p>'
        for d in documents
    )
    message.set_content(f"{text}\n\n-- \n{footer_text}\n")
    message.add_alternative(
        f"<!doctype html><html><body>{html}{footer_html}</body></html>", subtype="html"
    )
    return message


# --- sending ---------------------------------------------------------------------------------


class EmailMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.sent = Counter(
            "offers_emails_sent",
            "Emails the SMTP server accepted.",
            ("service", "mode"),
            registry=registry,
        )
        self.failed = Counter(
            "offers_emails_failed",
            "Emails refused for good (5xx): recorded, not retried.",
            ("service",),
            registry=registry,
        )
        self.retried = Counter(
            "offers_emails_retried",
            "Sends that failed for a passing reason (no connection, 4xx) and will be tried again.",
            ("service",),
            registry=registry,
        )
        self.waiting = Gauge(
            "offers_emails_waiting",
            "Notifications whose email is not sent yet (as of the sender's last pass).",
            ("service",),
            registry=registry,
        )


class Transient(Exception):
    """The server could not take the email now: try again later."""


class Permanent(Exception):
    """The server refused the email for good (5xx)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


@dataclass(slots=True)
class Unit:
    """What one email carries: one notification, or a digest of several."""

    key: str
    documents: list[Document]

    @property
    def ids(self) -> list[str]:
        return [d["_id"] for d in self.documents]

    @property
    def recipient_id(self) -> str:
        return str(self.documents[0]["recipient_id"])


class Ownership:
    """Whose emails this instance sends: those of the recipients whose partition of the
    internal topic (where their inbox's writer is) its consumers hold. So each email has one
    sender however many instances run, as each inbox has one writer; only during a rebalance
    can an email in the middle of its SMTP transaction on the old owner also go from the new
    one (the same Message-ID)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.records: Any = None  # services.runtime.service.Records, once the app is built
        self.broker: Any = None
        self._count = 0

    def owns(self, recipient_id: str) -> bool:
        if self.records is None:
            return True  # no consumers (a sender on its own, in a test): every recipient
        owned = {tp.partition for tp in self.records.in_flight.owned if tp.topic == self.topic}
        if not owned:
            return False
        if not self._count:
            self._count = self._partitions()
        if not self._count:
            return False
        # The producers' partitioner (aiokafka's default: murmur2 of the key, as Java's).
        partition = DefaultPartitioner()(recipient_id.encode(), list(range(self._count)), [])
        return partition in owned

    def _partitions(self) -> int:
        for subscriber in self.broker.subscribers if self.broker is not None else ():
            consumer = getattr(subscriber, "consumer", None)
            found = consumer.partitions_for_topic(self.topic) if consumer is not None else None
            if found:
                return len(found)
        return 0


class EmailSender:
    def __init__(
        self,
        settings: EmailSettings,
        notifications: AsyncCollection[Document],
        sends: Documents,
        ask: Callable[[CloseEmails], Any],
        metrics: EmailMetrics,
        clock: Callable[[], datetime] = utc_now,
        owner: Ownership | None = None,
    ) -> None:
        self.owner = owner
        self.settings = settings
        self.server = settings.server()
        self.notifications = notifications
        self.sends = sends
        self.ask = ask
        self.metrics = metrics
        self.clock = clock
        # Backoff per email (key → (monotonic time it may be tried again, its next delay)),
        # and for the server as a whole while it does not answer.
        self._retry: dict[str, tuple[float, float]] = {}
        self._server_back_at = 0.0
        self._server_delay = settings.retry_first_seconds
        self._client: aiosmtplib.SMTP | None = None
        self._last_used = 0.0

    async def run(self) -> None:
        if self.server is None:
            log.info("email is off (SMTP_URL is empty): notifications are not emailed")
            return
        log.info("emailing notifications through %s", self.server.describe())
        try:
            while True:
                try:
                    await self.pass_()
                except asyncio.CancelledError:
                    raise
                except PyMongoError as error:
                    log.warning(
                        "email sender: the database is not answering (%s); trying again", error
                    )
                except Exception:
                    log.exception("email sender: a pass failed; trying again")
                await asyncio.sleep(self.settings.poll_seconds)
        finally:
            await self._disconnect()

    async def pass_(self) -> int:
        """One look at the waiting list: sends what is due; returns how many emails went."""
        waiting: list[Document] = []
        for mode in (NOW, DIGEST):
            query = {EMAIL_STATE: WAITING, EMAIL_MODE: mode}
            waiting += await self.notifications.find(query).to_list(PAGE)
        count = len(waiting)
        if count >= PAGE:  # a backlog: count it all (the same equality, served by the index)
            count = await self.notifications.count_documents({EMAIL_STATE: WAITING})
        self.metrics.waiting.labels(self.metrics.service).set(count)
        now = self.clock()
        sent = 0
        for unit in self._due(waiting, now):
            if time.monotonic() < self._server_back_at:
                break
            if time.monotonic() < self._retry.get(unit.key, (0.0, 0.0))[0]:
                continue
            sent += await self._deliver(unit)
        if not waiting:
            await self._disconnect()  # idle: no connection held open
        return sent

    def _due(self, waiting: list[Document], now: datetime) -> list[Unit]:
        units: dict[str, Unit] = {}
        for document in sorted(waiting, key=lambda d: (d["created_at"], d["_id"])):
            if document["email_after"] > now:
                continue  # a digest whose window is still open
            if self.owner is not None and not self.owner.owns(document["recipient_id"]):
                continue  # another instance's: it holds the recipient's partition
            digest = document.get("email_digest")
            key = f"digest {document['recipient_id']} {digest}" if digest else document["_id"]
            units.setdefault(key, Unit(key, [])).documents.append(document)
        return list(units.values())

    async def _deliver(self, unit: Unit) -> int:
        recorded = {d["_id"]: await self.sends.get(d["_id"]) for d in unit.documents}
        done = {i: r for i, r in recorded.items() if r is not None}
        for outcome in (SENT, FAILED):
            ids = [i for i, r in done.items() if r["outcome"] == outcome]
            if ids:  # sent before a crash or before the inbox closed it: only close it
                await self._close(unit.recipient_id, ids, outcome)
        unit.documents = [d for d in unit.documents if d["_id"] not in done]
        if not unit.documents:
            return 0
        message = (
            digest_email(self.settings, unit.documents)
            if unit.documents[0].get("email_digest")
            else notification_email(self.settings, unit.documents[0])
        )
        try:
            await self._send(message)
        except Transient as error:
            self._back_off(unit, str(error))
            return 0
        except Permanent as error:
            log.error(
                "email to %s for %s (notification%s %s) refused for good by %s: %s; recorded "
                "as failed and not retried (check the address in their preferences)",
                message["To"],
                unit.recipient_id,
                "s" if len(unit.ids) > 1 else "",
                ", ".join(unit.ids),
                self.server.describe() if self.server else "?",
                error,
                extra={"recipient_id": unit.recipient_id},
            )
            self._retry.pop(unit.key, None)
            await self._record(unit, message, FAILED, code=error.code, text=error.text)
            self.metrics.failed.labels(self.metrics.service).inc()
            return 0
        self._retry.pop(unit.key, None)
        await self._record(unit, message, SENT)
        mode = "digest" if unit.documents[0].get("email_digest") else "single"
        self.metrics.sent.labels(self.metrics.service, mode).inc()
        log.info(
            "emailed %s to %s: %s (%d notification%s)",
            unit.recipient_id,
            message["To"],
            message["Subject"],
            len(unit.ids),
            "s" if len(unit.ids) > 1 else "",
            extra={"recipient_id": unit.recipient_id},
        )
        return 1

    async def _record(
        self,
        unit: Unit,
        message: EmailMessage,
        outcome: str,
        *,
        code: int | None = None,
        text: str | None = None,
    ) -> None:
        now = self.clock()
        for notification_id in unit.ids:
            await self.sends.insert(
                {
                    "_id": notification_id,
                    "recipient_id": unit.recipient_id,
                    "to": message["To"],
                    "message_id": message["Message-ID"],
                    "outcome": outcome,
                    "smtp_code": code,
                    "smtp_text": text,
                    "at": now,
                }
            )
        await self._close(unit.recipient_id, unit.ids, outcome)

    async def _close(self, recipient_id: str, ids: list[str], outcome: str) -> None:
        await self.ask(
            CloseEmails(
                command_id=derived_id("close-emails", outcome, *ids),
                recipient_id=recipient_id,
                notification_ids=ids,
                outcome=outcome,  # type: ignore[arg-type]
            )
        )

    def _back_off(self, unit: Unit, reason: str) -> None:
        _, delay = self._retry.get(unit.key, (0.0, self.settings.retry_first_seconds))
        self._retry[unit.key] = (
            time.monotonic() + delay,
            min(delay * 2, self.settings.retry_max_seconds),
        )
        self.metrics.retried.labels(self.metrics.service).inc()
        log.warning(
            "email for %s (%s) not sent: %s; trying again in %.0fs",
            unit.recipient_id,
            ", ".join(unit.ids),
            reason,
            delay,
            extra={"recipient_id": unit.recipient_id},
        )

    async def _send(self, message: EmailMessage) -> None:
        """One message over the open connection (opened if need be). Raises Transient or
        Permanent; a connection that failed is dropped, and the next send opens another."""
        assert self.server is not None
        try:
            client = await self._connect()
            await client.send_message(message)
            self._last_used = time.monotonic()
        except aiosmtplib.SMTPRecipientsRefused as error:
            await self._disconnect()
            refused = error.recipients[0] if error.recipients else None
            if refused is not None and refused.code >= 500:
                raise Permanent(refused.code, refused.message) from None
            raise Transient(f"recipient refused for now: {error}") from None
        except (
            aiosmtplib.SMTPConnectError,
            aiosmtplib.SMTPConnectResponseError,
            aiosmtplib.SMTPHeloError,
            aiosmtplib.SMTPAuthenticationError,
            aiosmtplib.SMTPServerDisconnected,
            aiosmtplib.SMTPTimeoutError,
            OSError,
            TimeoutError,
        ) as error:
            # The server, not this email: hold every email back, not just this one.
            await self._disconnect()
            self._server_unavailable(error)
            raise Transient(f"the SMTP server at {self.server.describe()} is unavailable") from None
        except aiosmtplib.SMTPResponseException as error:
            await self._disconnect()
            if error.code >= 500:
                raise Permanent(error.code, error.message) from None
            raise Transient(f"the server answered {error.code} {error.message}") from None
        self._server_delay = self.settings.retry_first_seconds

    def _server_unavailable(self, error: BaseException) -> None:
        delay = self._server_delay
        self._server_back_at = time.monotonic() + delay
        self._server_delay = min(delay * 2, self.settings.retry_max_seconds)
        assert self.server is not None
        log.warning(
            "the SMTP server at %s is unavailable (%s); the waiting emails are kept and tried "
            "again in %.0fs (check SMTP_URL, or start the mail catcher: `make run` does)",
            self.server.describe(),
            str(error) or type(error).__name__,
            delay,
        )

    async def _connect(self) -> aiosmtplib.SMTP:
        assert self.server is not None
        fresh = time.monotonic() - self._last_used < IDLE_SECONDS
        if self._client is not None and self._client.is_connected and fresh:
            return self._client
        await self._disconnect()
        client = aiosmtplib.SMTP(
            hostname=self.server.host,
            port=self.server.port,
            username=self.server.username,
            password=self.server.password,
            use_tls=self.server.tls,
            # STARTTLS when the server offers it (a real provider on 587), not on loopback.
            start_tls=None if not self.server.tls else False,
            timeout=self.settings.timeout_seconds,
        )
        await client.connect()
        self._client = client
        return client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
