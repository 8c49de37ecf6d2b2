"""Options → the exact command model, and bad options → exit 2 with one line."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts import (
    COMMAND_ADAPTERS,
    COMMAND_TOPICS,
    COMMAND_TYPES,
    AcceptOffer,
    ChangeOffer,
    ExtendOffer,
    FixedTerms,
    HourlyTerms,
    LogTime,
    MarkNotificationsRead,
    ProposeTerms,
    SetNotificationPreferences,
)
from offers_cli import build
from offers_cli.__main__ import run
from offers_cli.actions import make_command
from offers_cli.bus import answer_topics
from offers_cli.config import Config
from offers_cli.errors import UsageError
from offers_cli.parser import build_parser
from tests.kit import hourly_terms, today

CONFIG = Config(
    "127.0.0.1:1", "http://127.0.0.1:1", "http://127.0.0.1:1", "http://127.0.0.1:1", None
)


def parse(*argv: str) -> Any:
    return build_parser().parse_args(list(argv))


def day(offset: int) -> str:
    return (today() + timedelta(days=offset)).isoformat()


class FakeApi:
    """The read API's offer, as `change`/`accept`/`propose` read it."""

    def __init__(self, offer: Mapping[str, Any]) -> None:
        self._offer = offer
        self.asked: list[str] = []

    def offer(self, offer_id: str) -> Mapping[str, Any]:
        self.asked.append(offer_id)
        return self._offer

    def inbox(self, recipient_id: str, *, unread_only: bool = False) -> list[dict[str, Any]]:
        return [{"notification_id": "n-1"}, {"notification_id": "n-2"}]


def test_a_fixed_offer_with_milestones() -> None:
    args = parse(
        "extend", "--as", "client-1", "--freelancer", "free-1", "--offer-id", "offer-1",
        "--job", "job-1", "--proposal", "prop-1", "--title", "Logo",
        "--description", "A logo in three variants",
        "--milestone", "Sketches:500:+10", "--milestone", "Final files: print:300.5",
        "--start", "+5", "--end", day(40), "--talent-cloud", "tc-design",
        "--po-number", "PO-7", "--custom-field", "billable=true", "--custom-field", "seats=3",
        "--custom-field", "cost_center=R&D-12", "--custom-field", "code=0042",
        "--message", "Welcome",
    )  # fmt: skip
    command = build.extend(args, args.actor)
    assert isinstance(command, ExtendOffer)
    assert (command.offer_id, command.job_id, command.proposal_id) == ("offer-1", "job-1", "prop-1")
    assert (command.client_id, command.actor_id, command.freelancer_id) == (
        "client-1",
        "client-1",
        "free-1",
    )
    assert command.message == "Welcome"
    terms = command.terms
    assert isinstance(terms, FixedTerms)
    assert terms.total_amount == Decimal("800.50")  # the sum of the milestones by default
    assert [(m.description, m.amount, m.due_date) for m in terms.milestones] == [
        ("Sketches", Decimal("500"), today() + timedelta(days=10)),
        ("Final files: print", Decimal("300.5"), None),
    ]
    assert terms.start_date == today() + timedelta(days=5)
    assert terms.custom_fields == {
        "billable": True,
        "seats": 3,
        "cost_center": "R&D-12",
        "code": "0042",
    }
    assert (terms.talent_cloud_id, terms.po_number, terms.currency) == ("tc-design", "PO-7", "USD")


def test_an_hourly_offer_gets_fresh_uuids() -> None:
    args = parse(
        "--as", "client-1", "extend", "--freelancer", "free-1", "--title", "T",
        "--description", "D", "--rate", "45", "--weekly-limit", "30",
        "--start", "today", "--end", "+90",
    )  # fmt: skip
    first, second = build.extend(args, args.actor), build.extend(args, args.actor)
    assert isinstance(first.terms, HourlyTerms)
    assert first.terms.hourly_rate == Decimal("45")
    assert first.terms.weekly_limit_hours == 30
    assert first.terms.start_date == today()
    assert len(first.offer_id) == 36 and first.offer_id != second.offer_id
    assert first.command_id != second.command_id
    # on the wire, money is a 2-decimal string (the contracts model serialises it)
    assert '"hourly_rate":"45.00"' in first.model_dump_json()


def test_change_applies_only_the_options_to_the_current_terms() -> None:
    current = hourly_terms(custom_fields={"cost_center": "R&D-12"})
    api = FakeApi({"offer_id": "offer-1", "version": 3, "terms": current})
    args = parse(
        "change", "offer-1", "--as", "client-1", "--rate", "50", "--remove", "po_number",
        "--custom-field", "billable=false", "--in-response-to", "msg-7", "--message", "50/h?",
    )  # fmt: skip
    command = make_command(args, "client-1", api)
    assert isinstance(command, ChangeOffer)
    assert api.asked == ["offer-1"]
    expected = {k: v for k, v in current.items() if k != "po_number"}
    expected["hourly_rate"] = "50.00"
    expected["custom_fields"] = {"cost_center": "R&D-12", "billable": False}
    assert command.terms.model_dump(mode="json", exclude_none=True) == expected
    assert (command.in_response_to, command.message) == ("msg-7", "50/h?")


def test_change_without_any_terms_option_is_refused() -> None:
    api = FakeApi({"offer_id": "offer-1", "version": 1, "terms": hourly_terms()})
    with pytest.raises(UsageError, match="nothing to change"):
        make_command(parse("change", "offer-1"), "client-1", api)


def test_propose_carries_only_the_changes() -> None:
    api = FakeApi({"offer_id": "offer-1", "version": 1, "terms": hourly_terms()})
    args = parse("propose", "offer-1", "--rate", "55", "--text", "55?", "--message-id", "m-1")
    command = make_command(args, "free-1", api)
    assert isinstance(command, ProposeTerms)
    assert command.changes.model_dump(mode="json") == {
        "contract_type": "hourly",
        "hourly_rate": "55.00",
    }
    assert (command.message_id, command.text, command.actor_id) == ("m-1", "55?", "free-1")
    assert api.asked == []  # nothing to merge: the read API is not asked


def test_accept_takes_the_current_version_unless_one_is_given() -> None:
    api = FakeApi({"offer_id": "offer-1", "version": 4, "terms": hourly_terms()})
    current = make_command(parse("accept", "offer-1"), "free-1", api)
    assert isinstance(current, AcceptOffer) and current.version == 4
    given = make_command(parse("accept", "offer-1", "--version", "2"), "free-1", api)
    assert isinstance(given, AcceptOffer) and given.version == 2
    assert api.asked == ["offer-1"]


def test_log_time_and_mark_all_read() -> None:
    api = FakeApi({})
    logged = make_command(
        parse("log-time", "contract-1", "--hours", "7.5", "--date", "+1", "--entry-id", "e-1"),
        "free-1",
        api,
    )
    assert isinstance(logged, LogTime)
    assert (logged.hours, logged.work_date, logged.entry_id) == (
        Decimal("7.5"),
        today() + timedelta(days=1),
        "e-1",
    )
    marked = make_command(parse("mark-read", "--all"), "free-1", api)
    assert isinstance(marked, MarkNotificationsRead)
    assert (marked.recipient_id, marked.notification_ids) == ("free-1", ["n-1", "n-2"])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--rate", "-4"], "terms.hourly_rate (--rate): must be a decimal string"),
        (["--rate", "45", "--milestone", "A:5"], "--rate/--weekly-limit are for hourly"),
        (["--milestone", "no amount here"], "expected description:amount[:due-date]"),
        (["--rate", "45", "--custom-field", "novalue"], "expected key=value"),
        ([], "terms.contract_type (--type): is required"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["extend", "--as", "c-1", "--freelancer", "f-1", "--title", "T", "--description", "D"]
    dates = ["--start", "+1", "--end", "+30"]
    assert run([*base, *dates, *argv], CONFIG) == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing was sent
    assert err.count("\n") == 1 and expected in err, err
    assert "Traceback" not in err


def test_every_problem_is_listed_on_the_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["extend", "--as", "c-1", "--freelancer", "f 1", "--title", " ", "--rate", "4.567"]
    assert run(argv, CONFIG) == 2
    err = capsys.readouterr().err
    for problem in (
        "freelancer_id (--freelancer): must be an id",
        "terms.title (--title): must not be blank",
        "terms.description (--description): is required",
        "terms.hourly_rate (--rate): must be a decimal string",
        "terms.start_date (--start): is required",
    ):
        assert problem in err
    assert err.count("\n") == 1


def test_argparse_errors_and_a_missing_actor_are_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(["accept"], CONFIG)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "offer_id" in err
    assert run(["withdraw", "offer-1"], CONFIG) == 2
    assert "pass --as <actor_id> or set OFFERS_ACTOR" in capsys.readouterr().err


def test_as_is_accepted_before_and_after_the_subcommand() -> None:
    assert parse("--as", "a-1", "decline", "o-1").actor == "a-1"
    assert parse("decline", "o-1", "--as", "a-2").actor == "a-2"
    assert parse("--as", "a-1", "decline", "o-1", "--as", "a-2").actor == "a-2"
    assert parse("contracts", "--client", "c-1").action == "show"


def test_every_command_has_a_subcommand_and_its_topic() -> None:
    assert set(COMMAND_TOPICS) == set(COMMAND_TYPES)
    for name, topic in COMMAND_TOPICS.items():
        assert topic in COMMAND_ADAPTERS
        assert "commands.rejected" in answer_topics(name)
    assert "contracts.events" in answer_topics("AcceptOffer")
    assert set(build_parser().parse_args(["demo"]).__dict__) >= {"action", "timeout"}


def test_config_from_the_environment() -> None:
    config = Config.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "k:1", "OFFER_SERVICE_URL": "http://o:1/", "OFFERS_ACTOR": "me"}
    )
    assert (config.kafka, config.offer_service, config.actor) == ("k:1", "http://o:1", "me")
    assert config.messaging_service == "http://127.0.0.1:8002"
    assert Config.from_env({}).kafka == "127.0.0.1:9092"


def test_email_settings_choose_kinds_and_a_digest_for_oneself() -> None:
    args = parse(
        "email-settings",
        "--as",
        "free-1",
        "--email",
        "Bob@Example.com",
        "--kinds",
        "offer_received, new_message",
        "--digest",
        "new_message",
    )
    command = make_command(args, "free-1", FakeApi({}))
    assert isinstance(command, SetNotificationPreferences)
    assert command.recipient_id == "free-1"
    assert command.email == "Bob@example.com"
    assert command.email_kinds == ["offer_received", "new_message"]
    assert command.digest_kinds == ["new_message"]
    assert answer_topics(command.type) == ("notifications.events", "commands.rejected")


def test_email_settings_stop_email_and_refuse_an_unknown_kind_before_sending() -> None:
    stopped: Any = make_command(
        parse("email-settings", "--no-email", "--digest", ""), "free-1", FakeApi({})
    )
    assert stopped.email is None and stopped.email_kinds == ["all"] and stopped.digest_kinds == []
    with pytest.raises(UsageError, match=r"email_kinds\.0"):
        make_command(
            parse("email-settings", "--email", "b@example.com", "--kinds", "offers"),
            "free-1",
            FakeApi({}),
        )
