"""notification_service, declared: what it reads, what it writes, its reminder sweep and its
read API."""

from __future__ import annotations

from datetime import datetime, timedelta

from starlette.applications import Starlette

from contracts import (
    EVENT_ADAPTERS,
    NOTIFICATION_COMMAND_ADAPTER,
    ContractActivated,
    MarkNotificationsRead,
    MessagePosted,
    SetNotificationPreferences,
    TalentCloudMemberAdded,
    TermsProposed,
    ThreadClosed,
    TimeLogged,
    topics,
)
from contracts.internal import CloseEmails, Notify, SendReminder
from services.rules import derived_id
from services.runtime.app import Built, Kit, service_app
from services.runtime.clock import utc_now
from services.runtime.config import Settings
from services.runtime.documents import Document, Documents
from services.runtime.due import DueBuckets
from services.runtime.service import (
    Kind,
    On,
    ServiceTable,
    acts,
    decides,
    each_offer_event,
    internal_on,
    numbers,
)
from services.runtime.streams import Streams
from services.runtime.uow import Repository

from .domain import Inbox, OfferInfo
from .email import EmailMetrics, EmailSender, EmailSettings, Ownership
from .handlers import NotificationHandlers, reminder_id_for
from .read_api import read_routes
from .store import (
    WRITE_ONCE_COLLECTIONS,
    NotificationStore,
    adopt_legacy_preferences,
    adopt_legacy_reminders,
)
from .stream import OPENAPI_PATHS, stream_routes

NAME = "notification_service"
HTTP_PORT = 8003


def offers(handlers: NotificationHandlers) -> Repository[OfferInfo]:
    return handlers.store.offers


def inboxes(handlers: NotificationHandlers) -> Repository[Inbox]:
    return handlers.store.inboxes


def notifications(handlers: NotificationHandlers) -> Documents:
    return handlers.store.notifications


TABLE = ServiceTable(
    NAME,
    HTTP_PORT,
    consumes=(
        On(
            topics.OFFERS_EVENTS,
            EVENT_ADAPTERS[topics.OFFERS_EVENTS],
            Kind.EVENT,
            each_offer_event(NotificationHandlers.on_offer_event, state=offers),
            # An offer's first event: the messages parked for it go on.
            releases=lambda event: event.offer_id,
        ),
        On(
            topics.CONTRACTS_EVENTS,
            EVENT_ADAPTERS[topics.CONTRACTS_EVENTS],
            Kind.EVENT,
            (
                acts(ContractActivated, NotificationHandlers.on_event),
                acts(TimeLogged, NotificationHandlers.on_event),
            ),
        ),
        On(
            topics.TALENT_CLOUDS_EVENTS,
            EVENT_ADAPTERS[topics.TALENT_CLOUDS_EVENTS],
            Kind.EVENT,
            (acts(TalentCloudMemberAdded, NotificationHandlers.on_event),),
        ),
        On(
            topics.NEGOTIATIONS_EVENTS,
            EVENT_ADAPTERS[topics.NEGOTIATIONS_EVENTS],
            Kind.EVENT,
            (
                decides(MessagePosted, NotificationHandlers.on_chat_event, state=offers),
                decides(TermsProposed, NotificationHandlers.on_chat_event, state=offers),
                acts(ThreadClosed, NotificationHandlers.on_event),
            ),
        ),
        On(
            topics.NOTIFICATIONS_COMMANDS,
            NOTIFICATION_COMMAND_ADAPTER,
            Kind.COMMAND,
            (
                acts(MarkNotificationsRead, NotificationHandlers.mark_read, on=notifications),
                decides(
                    SetNotificationPreferences,
                    NotificationHandlers.set_preferences,
                    state=inboxes,
                ),
            ),
        ),
        internal_on(
            NAME,
            numbers(Notify, NotificationHandlers.notify, state=inboxes, once=notifications),
            decides(SendReminder, NotificationHandlers.send_reminder, state=offers, seen=True),
            acts(CloseEmails, NotificationHandlers.close_emails, on=notifications),
        ),
    ),
    publishes=(
        topics.NOTIFICATIONS_EVENTS,
        topics.COMMANDS_REJECTED,
        topics.COMMANDS_DEAD_LETTER,
    ),
)


def build(kit: Kit, email: EmailSettings, owner: Ownership) -> Built:
    # An inbox exists only for a recipient who chose email preferences (or was counted
    # before numbering by place): few, so listed, and a new recipient's is not read.
    store = NotificationStore.on(
        lambda name: kit.documents(
            name, kept=name not in WRITE_ONCE_COLLECTIONS, listed=name == "inboxes"
        )
    )
    handlers = NotificationHandlers(
        store,
        kit.uow,
        kit.refusals,
        reminder_leads_seconds=kit.settings.offer_reminder_leads_seconds,
        email_digest_seconds=email.digest_seconds,
    )
    sender = EmailSender(
        email,
        kit.database["notifications"],
        store.email_sends,
        kit.requests.send,
        EmailMetrics(kit.metrics.registry, NAME),
        owner=owner,
    )
    # The projections with a reminder to send, by the minute their first one falls due in,
    # read whole: a SendReminder takes its projection as the sweep read it (`seen`).
    due = DueBuckets(
        kit.database["offers"],
        kit.database["sweeps"],
        "reminders",
        fields=("reminders", "version"),  # what `send` reads
        ahead=timedelta(seconds=kit.settings.expiry_sweep_interval_seconds),
        seen=kit.seen_by_sweep("offers"),
    )

    def send(offer: Document, now: datetime) -> SendReminder | None:
        # Its first reminder (earliest) is due: the handler decides what to send of the due
        # ones (domain.reminder_due); the id only names this ask, so that asks repeat it.
        first = (offer.get("reminders") or [None])[0]
        if first is None or first["due_at"] > now:
            return None
        reminder_id = reminder_id_for(offer["_id"], offer["version"], first["lead_seconds"])
        return SendReminder(
            command_id=derived_id("send-reminder", reminder_id),
            offer_id=offer["_id"],
            reminder_id=reminder_id,
            version=offer["version"],
        )

    async def prepare() -> None:
        await store.ensure_indexes()
        await due.ensure_ready(utc_now())
        await adopt_legacy_reminders(kit.database)
        await adopt_legacy_preferences(kit.database)

    streams = Streams(kit.settings, topics.NOTIFICATIONS_EVENTS, kit.metrics)
    notifications = kit.database["notifications"]
    return Built(
        handlers,
        # The stream's route first: /notifications/stream is not a notification id.
        [
            *stream_routes(streams, notifications),
            *read_routes(notifications, kit.database["inboxes"]),
        ],
        prepare,
        outboxes=(store.offers.documents, store.notifications, store.inboxes.documents),
        background=(kit.asking_sweep(due, send, "expiry reminders"), streams.run, sender.run),
        streams=streams,
        openapi_paths=OPENAPI_PATHS,
    )


def create_app(settings: Settings | None = None, email: EmailSettings | None = None) -> Starlette:
    settings = settings or Settings.from_env(NAME, HTTP_PORT)
    chosen = email or EmailSettings.from_env()
    owner = Ownership(topics.internal(settings.kafka_group_id))
    app = service_app(TABLE, settings, lambda kit: build(kit, chosen, owner))
    # The sender emails for the recipients whose partitions this instance's consumers hold.
    owner.records, owner.broker = app.state.records, app.state.broker
    return app
