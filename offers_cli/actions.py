"""What each subcommand does: publish a command and report its answer, show a read-API
resource, or watch topics."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from contracts import Command, CommandRejected, Event, MarkNotificationsRead, OfferAccepted
from offers_cli import build, render
from offers_cli.bus import ALL_TOPICS, Record, Session, answer_topics, answers, watch
from offers_cli.config import Config
from offers_cli.errors import EXIT_OK, EXIT_REJECTED, UsageError
from offers_cli.read_api import ReadApi
from services.mailcatcher import read_mail

ID_FIELDS = (
    "offer_id",
    "contract_id",
    "recipient_id",
    "job_id",
    "proposal_id",
    "message_id",
    "entry_id",
    "version",
)
MARK_READ_GRACE = 2.0  # seconds to wait for a refusal when there is nothing to see change


def say(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def report(event: Event, *, as_json: bool) -> None:
    if as_json:
        say(event.model_dump_json())
    else:
        say(*render.outcome(event))


def actor_of(args: argparse.Namespace, config: Config) -> str:
    actor = getattr(args, "actor", None) or config.actor
    if not actor:
        raise UsageError("who is acting? pass --as <actor_id> or set OFFERS_ACTOR")
    return str(actor)


class Lookups(Protocol):
    """What building a command may read: the ReadApi, or a stand-in in tests."""

    def offer(self, offer_id: str) -> Mapping[str, Any]: ...

    def inbox(self, recipient_id: str, *, unread_only: bool = False) -> list[dict[str, Any]]: ...


def make_command(args: argparse.Namespace, actor: str, api: Lookups) -> Command:
    def unread(recipient: str) -> list[str]:
        return [n["notification_id"] for n in api.inbox(recipient, unread_only=True)]

    match args.action:
        case "extend":
            return build.extend(args, actor)
        case "change":
            return build.change(args, actor, api.offer)
        case "propose":
            return build.propose(args, actor, api.offer)
        case "accept":
            return build.accept(args, actor, api.offer)
        case "withdraw":
            return build.withdraw(args, actor)
        case "decline":
            return build.decline(args, actor)
        case "post":
            return build.post(args, actor)
        case "log-time":
            return build.log_time(args, actor)
        case "mark-read":
            return build.mark_read(args, actor, unread)
        case "email-settings":
            return build.email_settings(args, actor)
    raise AssertionError(f"not a command: {args.action}")


def sent_line(command: Command) -> str:
    """``→ ExtendOffer offer_id=… job_id=… (command …, as client-1)``: the ids to copy."""
    ids = " ".join(
        f"{name}={getattr(command, name)}" for name in ID_FIELDS if hasattr(command, name)
    )
    return f"→ {command.type} {ids} (command {command.command_id}, as {command.actor_id})"


# --- publish ---------------------------------------------------------------------------------


def publish(args: argparse.Namespace, config: Config) -> int:
    actor = actor_of(args, config)
    api = ReadApi(config, actor=actor)
    command = make_command(args, actor, api)
    if not args.json:
        say(sent_line(command))
    return asyncio.run(_publish(command, args, config, api))


async def _publish(command: Command, args: argparse.Namespace, config: Config, api: ReadApi) -> int:
    if args.no_wait:
        async with Session(config.kafka) as session:
            await session.send(command)
        if not args.json:
            say("sent (not waiting for the answer: --no-wait)")
        return EXIT_OK
    async with Session(config.kafka, answer_topics(command.type)) as session:
        if isinstance(command, MarkNotificationsRead):
            return await _mark_read(session, command, api, args)
        await session.send(command)
        event = await session.answer(command, args.timeout)
        report(event, as_json=args.json)
        if isinstance(event, CommandRejected):
            return EXIT_REJECTED
        if isinstance(event, OfferAccepted):
            # The contract is offer_service's next step: worth the wait, it has the id to use.
            contract = await session.follow(event.event_id, "ContractActivated", args.timeout)
            if contract is None:
                say("… no ContractActivated yet: `offers watch contracts.events` to follow it")
            else:
                report(contract, as_json=args.json)
        return EXIT_OK


async def _mark_read(
    session: Session, command: MarkNotificationsRead, api: ReadApi, args: argparse.Namespace
) -> int:
    """MarkNotificationsRead publishes no event: success shows in the inbox, failure as a
    CommandRejected. Watch both."""

    def still_unread() -> set[str]:
        unread = api.inbox(command.recipient_id, unread_only=True)
        return {n["notification_id"] for n in unread} & set(command.notification_ids)

    targets = await asyncio.to_thread(still_unread)
    await session.send(command)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        refused = await session.wait_for(answers(command), 0.3)
        if refused is not None:
            event = refused.event()
            assert event is not None
            report(event, as_json=args.json)
            return EXIT_REJECTED
        elapsed = loop.time() - started
        left = await asyncio.to_thread(still_unread) if targets else set()
        if (targets and not left) or (not targets and elapsed >= MARK_READ_GRACE):
            count = len(targets)
            say(
                json.dumps({"recipient_id": command.recipient_id, "marked_read": sorted(targets)})
                if args.json
                else f"{render.OK} {count} notification(s) of {command.recipient_id} marked read"
                + ("" if targets else " (none of those ids was unread)")
            )
            return EXIT_OK
        if elapsed >= args.timeout:
            await session.answer(command, 0)  # raises: no answer in time


# --- show ------------------------------------------------------------------------------------


def show(args: argparse.Namespace, config: Config) -> int:
    api = ReadApi(config, actor=getattr(args, "actor", None))
    data: Any
    match args.what:
        case "offer":
            data = api.offer(args.id)
            lines = render.offer_view(data)
        case "offers":
            if not (args.client or args.freelancer or args.job):
                raise UsageError("whose offers? give --client, --freelancer and/or --job")
            data = api.offers(
                client_id=args.client,
                freelancer_id=args.freelancer,
                job_id=args.job,
                status=args.status,
            )
            lines = render.offers_list(data)
        case "thread":
            data = api.thread(args.id)
            lines = render.thread_view(data)
        case "inbox":
            recipient = args.id or actor_of(args, config)
            data = api.inbox(recipient, unread_only=args.unread)
            lines = render.inbox_view(recipient, data)
        case "preferences":
            recipient = args.id or actor_of(args, config)
            data = api.preferences(recipient)
            lines = render.preferences_view(data)
        case "mail":
            directory = Path(args.dir or os.environ.get("MAIL_DIR") or ".infra/mail")
            messages = read_mail(directory, args.address)
            data = [render.mail_json(message) for message in messages]
            lines = render.mail_view(args.address, directory, messages)
        case "contract":
            data = api.contract(args.id)
            lines = render.contract_view(data)
        case "contracts":
            if not (args.client or args.freelancer):
                raise UsageError("whose contracts? give --client and/or --freelancer")
            data = api.contracts(client_id=args.client, freelancer_id=args.freelancer)
            lines = render.contracts_list(data)
        case "members":
            data = api.members(args.id)
            lines = render.members_list(args.id, data)
        case _:
            raise AssertionError(args.what)
    if args.json:
        say(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        say(*lines)
    return EXIT_OK


# --- watch -----------------------------------------------------------------------------------


def watch_topics(args: argparse.Namespace, config: Config) -> int:
    names: Sequence[str] = args.topics or ALL_TOPICS
    unknown = [name for name in names if name not in ALL_TOPICS]
    if unknown:
        raise UsageError(f"unknown topic {unknown[0]}; the topics are: {', '.join(ALL_TOPICS)}")

    def show_record(record: Record) -> None:
        if args.json:
            say(
                json.dumps(
                    {
                        "topic": record.topic,
                        "key": record.key,
                        "headers": record.headers,
                        "value": record.value
                        if record.value is not None
                        else record.raw.decode(errors="replace"),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            say(render.watch_line(record))

    print(f"watching {', '.join(names)} on {config.kafka} — Ctrl-C stops", file=sys.stderr)
    asyncio.run(watch(config.kafka, names, show_record, from_beginning=args.from_beginning))
    return EXIT_OK
