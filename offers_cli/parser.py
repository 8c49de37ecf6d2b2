"""The command line: every subcommand and option. ``args.action`` names what to do."""

from __future__ import annotations

import argparse
from typing import NoReturn

from offers_cli.build import REMOVABLE
from offers_cli.bus import ALL_TOPICS

DEFAULT_TIMEOUT = 15.0

EPILOG = """\
environment: OFFERS_ACTOR (instead of --as), KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:9092),
OFFER_SERVICE_URL (http://127.0.0.1:8001), MESSAGING_SERVICE_URL (…:8002),
NOTIFICATION_SERVICE_URL (…:8003).
exit codes: 0 done, 1 rejected or not found, 2 bad options, 3 Kafka/service unreachable or
no answer in time.
"""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the usage is one --help away.
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _identity(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before and after the subcommand; after it, an unset option must not override
    # what was given before it (SUPPRESS leaves the attribute alone).
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--as",
        dest="actor",
        metavar="ACTOR_ID",
        default=default,
        help="who acts (the authenticated user); default: $OFFERS_ACTOR",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print raw JSON instead of readable lines",
    )


def _sending(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--command-id", help="idempotency key (default: a new UUID)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the answer (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="publish and exit without waiting for the answer"
    )


def _terms(parser: argparse.ArgumentParser, *, partial: bool) -> None:
    group = parser.add_argument_group(
        "terms" + (" (only the ones given change)" if partial else ""),
        "dates: YYYY-MM-DD, today, or +N (days from today)",
    )
    group.add_argument("--title")
    group.add_argument("--description")
    group.add_argument(
        "--type",
        choices=("hourly", "fixed"),
        help="contract type (default: from --rate, or --total/--milestone)",
    )
    group.add_argument("--currency", help="ISO 4217 code (default USD)")
    group.add_argument("--rate", metavar="AMOUNT", help="hourly rate, like 45.00 (hourly)")
    group.add_argument(
        "--weekly-limit", type=int, metavar="HOURS", help="weekly hours limit, 1-168 (hourly)"
    )
    group.add_argument(
        "--total", metavar="AMOUNT", help="total (fixed; default: the sum of the milestones)"
    )
    group.add_argument(
        "--milestone",
        action="append",
        metavar="DESC:AMOUNT[:DUE]",
        help='a milestone (fixed; repeat), like "Wireframes:500:2026-12-15"',
    )
    group.add_argument("--start", metavar="DATE", help="start date")
    group.add_argument("--end", metavar="DATE", help="end date")
    group.add_argument("--talent-cloud", metavar="ID", help="Talent Cloud the freelancer joins")
    group.add_argument("--po-number")
    group.add_argument(
        "--custom-field",
        action="append",
        metavar="KEY=VALUE",
        help="repeat; numbers and true/false are typed, the rest are strings",
    )
    if partial:
        group.add_argument(
            "--remove",
            action="append",
            choices=REMOVABLE,
            metavar="FIELD",
            help=f"remove an optional field ({', '.join(REMOVABLE)}); repeat",
        )


def build_parser() -> Parser:
    parser = Parser(
        prog="offers",
        description="Play client or freelancer on the offers platform: publish commands, "
        "follow events, read the read APIs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _identity(parser, top=True)
    sub = parser.add_subparsers(dest="action", metavar="COMMAND", required=True)

    def command(name: str, help_: str, *, sends: bool = True) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=help_, description=help_, epilog=EPILOG)
        child.formatter_class = argparse.RawDescriptionHelpFormatter
        _identity(child, top=False)
        if sends:
            _sending(child)
        return child

    extend = command("extend", "client: extend an offer to a freelancer")
    extend.add_argument("--freelancer", required=True, metavar="ID")
    extend.add_argument("--offer-id", help="default: a new UUID")
    extend.add_argument("--job", metavar="ID", help="job id (default: a new UUID)")
    extend.add_argument("--proposal", metavar="ID", help="proposal id (default: a new UUID)")
    extend.add_argument("--message", help="a note to the freelancer")
    _terms(extend, partial=False)

    change = command("change", "client: make a different offer (the current terms, changed)")
    change.add_argument("offer_id")
    change.add_argument("--message", help="a note to the freelancer")
    change.add_argument(
        "--in-response-to", metavar="MESSAGE_ID", help="the terms proposal this answers"
    )
    _terms(change, partial=True)

    withdraw = command("withdraw", "client: withdraw a pending offer")
    withdraw.add_argument("offer_id")
    withdraw.add_argument("--reason")

    accept = command("accept", "freelancer: accept the offer (its current version)")
    accept.add_argument("offer_id")
    accept.add_argument(
        "--version", type=int, help="the version you reviewed (default: the current one)"
    )

    decline = command("decline", "freelancer: decline the offer")
    decline.add_argument("offer_id")
    decline.add_argument("--reason")

    post = command("post", "client or freelancer: post a message in the offer's thread")
    post.add_argument("offer_id")
    post.add_argument("text")
    post.add_argument("--message-id", help="default: a new UUID")

    propose = command("propose", "client or freelancer: propose other terms in the thread")
    propose.add_argument("offer_id")
    propose.add_argument("--text", help="what to say with the proposal")
    propose.add_argument("--message-id", help="default: a new UUID")
    _terms(propose, partial=True)

    log_time = command("log-time", "freelancer: log hours on an hourly contract")
    log_time.add_argument("contract_id")
    log_time.add_argument("--hours", required=True, help="like 7.5 (at most 24)")
    log_time.add_argument("--date", default="today", help="work date (default today, UTC)")
    log_time.add_argument("--memo")
    log_time.add_argument("--entry-id", help="default: a new UUID")

    mark_read = command("mark-read", "mark your notifications read")
    mark_read.add_argument("notification_ids", nargs="*", metavar="NOTIFICATION_ID")
    mark_read.add_argument("--all", action="store_true", help="every unread notification")
    mark_read.add_argument("--recipient", metavar="ID", help="whose inbox (default: --as)")

    email = command(
        "email-settings", "choose which of your notifications reach you by email, and where"
    )
    address = email.add_mutually_exclusive_group(required=True)
    address.add_argument("--email", metavar="ADDRESS", help="where to send them")
    address.add_argument("--no-email", action="store_true", help="stop all email")
    email.add_argument(
        "--kinds",
        default="all",
        metavar="KIND,…",
        help="the notification kinds to email, comma-separated, or all (default)",
    )
    email.add_argument(
        "--digest",
        default="new_message",
        metavar="KIND,…",
        help="of those, the kinds gathered into one digest email (default new_message; "
        "'' for none)",
    )
    email.add_argument("--recipient", metavar="ID", help="whose preferences (default: --as)")

    watch = command("watch", "follow topics live, one line per record", sends=False)
    watch.add_argument(
        "topics", nargs="*", metavar="TOPIC", help=f"default: all ({', '.join(ALL_TOPICS)})"
    )
    watch.add_argument(
        "--from-beginning", action="store_true", help="replay what the topics hold first"
    )

    show = command("show", "read the read APIs", sends=False)
    what = show.add_subparsers(dest="what", metavar="WHAT", required=True)

    def resource(name: str, help_: str, id_help: str | None = None) -> argparse.ArgumentParser:
        child = what.add_parser(name, help=help_, description=help_)
        _identity(child, top=False)
        if id_help is not None:
            child.add_argument("id", metavar=id_help)
        return child

    resource("offer", "an offer: status, terms, every version", "OFFER_ID")
    offers = resource("offers", "offers by client, freelancer, job or status")
    offers.add_argument("--client", metavar="ID")
    offers.add_argument("--freelancer", metavar="ID")
    offers.add_argument("--job", metavar="ID")
    offers.add_argument("--status", help="pending, accepted, declined, withdrawn or expired")
    resource("thread", "an offer's negotiation thread", "OFFER_ID")
    inbox = resource("inbox", "a user's notifications (default: --as)")
    inbox.add_argument("id", nargs="?", metavar="RECIPIENT_ID")
    inbox.add_argument("--unread", action="store_true", help="unread ones only")
    preferences = resource("preferences", "a user's email preferences (default: --as)")
    preferences.add_argument("id", nargs="?", metavar="RECIPIENT_ID")
    mail = resource("mail", "the emails the local mail catcher received for an address")
    mail.add_argument("address", metavar="ADDRESS")
    mail.add_argument(
        "--dir",
        metavar="MAILDIR",
        help="the catcher's Maildir (default: $MAIL_DIR, else .infra/mail)",
    )
    resource("contract", "a contract", "CONTRACT_ID")
    resource("members", "a Talent Cloud's members", "TALENT_CLOUD_ID")
    for target in (
        resource("contracts", "a client's or freelancer's contracts"),
        command("contracts", "a client's or freelancer's contracts", sends=False),
    ):
        target.add_argument("--client", metavar="ID")
        target.add_argument("--freelancer", metavar="ID")
    sub.choices["contracts"].set_defaults(action="show", what="contracts")

    demo = command("demo", "play a whole negotiation with fresh ids, step by step", sends=False)
    demo.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS")
    return parser
