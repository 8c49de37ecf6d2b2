"""The traffic of a fault run, and what each record of it should lead to (the ledger the
verdict checks against).

Offers follow short stories whose every command has a known outcome when the offer's
commands are handled in order (they share a key, so they do):
  accepted  extend, change (v2), accept v2                          -> accepted, one contract
  chat      extend, post, post, propose terms, change (v2)          -> pending, 3 messages
  withdrawn extend, withdraw, accept v1 (refused: invalid_state)    -> withdrawn
  declined  extend, decline                                         -> declined
  refused   extend, accept v7 (version_mismatch), change by the freelancer (not_authorized),
            extend again (offer_exists), accept v1                  -> accepted, one contract
  race      extend, then accept v1 and withdraw back to back in random order -> one wins
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from contracts import topics
from services.rules import derived_id
from tests.kit import hourly_terms

from .wire import Position, Sender, Step

Outcome = Literal["ok", "rejected", "any"]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def terms(talent_cloud_id: str | None, **changes: Any) -> dict[str, Any]:
    """Hourly terms; without a Talent Cloud when `talent_cloud_id` is None."""
    result = hourly_terms(talent_cloud_id=talent_cloud_id, **changes)
    if talent_cloud_id is None:
        del result["talent_cloud_id"]
    return result


@dataclass(frozen=True, slots=True)
class Parties:
    offer_id: str
    client_id: str
    freelancer_id: str
    story: str


@dataclass(frozen=True, slots=True)
class Expected:
    """What one command must lead to: one event, or one CommandRejected (with this code)."""

    type: str
    key: str
    outcome: Outcome
    code: str | None = None


@dataclass(slots=True)
class Malformed:
    """A record that is not a command (dead-letter) or an invalid one (rejected)."""

    step: Step
    kind: str
    fate: Literal["dead-letter", "rejected"]
    command_id: str | None
    sha256: str
    position: Position | None = None
    code: str | None = None  # the refusal's code, where the kind says which

    @property
    def record_id(self) -> str:
        """The id a rejection of a command without a usable command_id goes by."""
        assert self.position is not None
        p = self.position
        return derived_id("record", p.topic, str(p.partition), str(p.offset))


@dataclass
class Ledger:
    """Everything a fault run sent, and what should come of it."""

    name: str
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    offers: dict[str, Parties] = field(default_factory=dict)
    commands: dict[str, Expected] = field(default_factory=dict)
    final_status: dict[str, str | None] = field(default_factory=dict)  # None: any terminal
    races: dict[str, tuple[str, str]] = field(default_factory=dict)  # offer -> accept, withdraw
    malformed: list[Malformed] = field(default_factory=list)
    messages: set[tuple[str, str]] = field(default_factory=set)  # (offer_id, message_id)

    @property
    def talent_cloud_id(self) -> str:
        """The run's Talent Clouds' common prefix."""
        return f"tc-faults-{self.run}"

    def cloud_for(self, p: Parties) -> str:
        """The client's own cloud of this run: a cloud belongs to the first client naming it."""
        return f"{self.talent_cloud_id}-{p.client_id}"

    def ours(self, cloud: object) -> bool:
        """Whether a cloud is one of this run's."""
        return isinstance(cloud, str) and cloud.startswith(f"{self.talent_cloud_id}-")

    @property
    def people(self) -> set[str]:
        return {p for o in self.offers.values() for p in (o.client_id, o.freelancer_id)}

    def command(
        self,
        type_: str,
        actor_id: str,
        key: str,
        outcome: Outcome = "ok",
        code: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        command_id = str(uuid.uuid4())
        self.commands[command_id] = Expected(type_, key, outcome, code)
        return {"type": type_, "command_id": command_id, "actor_id": actor_id, **fields}

    def parties(self, story: str) -> Parties:
        parties = Parties(new_id("offer"), new_id("client"), new_id("free"), story)
        self.offers[parties.offer_id] = parties
        return parties

    def extend(self, p: Parties, outcome: Outcome = "ok", code: str | None = None) -> Step:
        tc = self.cloud_for(p) if p.story in ("accepted", "refused") else None
        message = self.command(
            "ExtendOffer",
            p.client_id,
            p.offer_id,
            outcome,
            code,
            offer_id=p.offer_id,
            job_id=new_id("job"),
            proposal_id=new_id("prop"),
            client_id=p.client_id,
            freelancer_id=p.freelancer_id,
            terms=terms(tc),
        )
        return Step(topics.OFFERS_COMMANDS, p.offer_id, message)

    def offer_command(
        self,
        type_: str,
        p: Parties,
        actor: str,
        outcome: Outcome = "ok",
        code: str | None = None,
        **fields: Any,
    ) -> Step:
        message = self.command(
            type_, actor, p.offer_id, outcome, code, offer_id=p.offer_id, **fields
        )
        return Step(topics.OFFERS_COMMANDS, p.offer_id, message)

    def chat(self, type_: str, p: Parties, sender: str, message_id: str, **fields: Any) -> Step:
        self.messages.add((p.offer_id, message_id))
        message = self.command(
            type_, sender, p.offer_id, offer_id=p.offer_id, message_id=message_id, **fields
        )
        return Step(topics.NEGOTIATIONS_COMMANDS, p.offer_id, message)

    # --- stories ---------------------------------------------------------------------------

    def accepted(self, rng: random.Random) -> list[Step]:
        p = self.parties("accepted")
        self.final_status[p.offer_id] = "accepted"
        tc = self.cloud_for(p)
        return [
            self.extend(p),
            self.offer_command("ChangeOffer", p, p.client_id, terms=terms(tc, hourly_rate="50.00")),
            self.offer_command("AcceptOffer", p, p.freelancer_id, version=2),
        ]

    def chatting(self, rng: random.Random) -> list[Step]:
        p = self.parties("chat")
        self.final_status[p.offer_id] = "pending"
        return [
            self.extend(p),
            self.chat("PostMessage", p, p.freelancer_id, "m-1", text="Could we say 60/h?"),
            self.chat("PostMessage", p, p.client_id, "m-2", text="Let me think about it."),
            self.chat("ProposeTerms", p, p.freelancer_id, "m-3", changes={"hourly_rate": "60.00"}),
            self.offer_command(
                "ChangeOffer", p, p.client_id, terms=terms(None, hourly_rate="50.00")
            ),
        ]

    def withdrawn(self, rng: random.Random) -> list[Step]:
        p = self.parties("withdrawn")
        self.final_status[p.offer_id] = "withdrawn"
        return [
            self.extend(p),
            self.offer_command("WithdrawOffer", p, p.client_id, reason="Budget cut"),
            self.offer_command(
                "AcceptOffer", p, p.freelancer_id, "rejected", "invalid_state", version=1
            ),
        ]

    def declined(self, rng: random.Random) -> list[Step]:
        p = self.parties("declined")
        self.final_status[p.offer_id] = "declined"
        return [
            self.extend(p),
            self.offer_command("DeclineOffer", p, p.freelancer_id, reason="Booked"),
        ]

    def refused(self, rng: random.Random) -> list[Step]:
        p = self.parties("refused")
        self.final_status[p.offer_id] = "accepted"
        return [
            self.extend(p),
            self.offer_command(
                "AcceptOffer", p, p.freelancer_id, "rejected", "version_mismatch", version=7
            ),
            self.offer_command(
                "ChangeOffer",
                p,
                p.freelancer_id,
                "rejected",
                "not_authorized",
                terms=terms(None, hourly_rate="99.00"),
            ),
            self.extend(p, "rejected", "offer_exists"),
            self.offer_command("AcceptOffer", p, p.freelancer_id, version=1),
        ]

    def race(self, rng: random.Random) -> list[Step]:
        p = self.parties("race")
        self.final_status[p.offer_id] = None
        accept = self.offer_command("AcceptOffer", p, p.freelancer_id, "any", version=1)
        withdraw = self.offer_command("WithdrawOffer", p, p.client_id, "any")
        assert isinstance(accept.value, dict) and isinstance(withdraw.value, dict)
        self.races[p.offer_id] = (accept.value["command_id"], withdraw.value["command_id"])
        pair = [accept, withdraw]
        rng.shuffle(pair)
        return [self.extend(p), *pair]

    def mixed(self, offers: int, rng: random.Random) -> list[list[Step]]:
        """One story per offer, the kinds in turn."""
        kinds: list[Callable[[random.Random], list[Step]]] = [
            self.accepted,
            self.chatting,
            self.withdrawn,
            self.accepted,
            self.declined,
            self.refused,
        ]
        return [kinds[n % len(kinds)](rng) for n in range(offers)]

    # --- malformed records -----------------------------------------------------------------

    def malformed_record(self, n: int, rng: random.Random, kind: str | None = None) -> Malformed:
        """The n-th malformed record: the kinds in turn (or the one named), spread over the
        four command topics. Recorded in the ledger; its position is set once it is sent."""
        kinds = MALFORMED_KINDS
        kind = kind or kinds[n % len(kinds)]
        topic = (
            topics.OFFERS_COMMANDS,
            topics.NEGOTIATIONS_COMMANDS,
            topics.CONTRACTS_COMMANDS,
            topics.NOTIFICATIONS_COMMANDS,
        )[(n // len(kinds)) % 4]
        key = new_id("junk")
        command_id: str | None = str(uuid.uuid4())
        new_command_id = str(command_id)
        fate: Literal["dead-letter", "rejected"] = "dead-letter"
        value: bytes | None
        if kind == "not-json":
            value = b"{not json " + str(n).encode()
        elif kind == "not-utf8":
            value = b"\xff\xfe\x00garbage"
        elif kind == "not-an-object":
            value = rng.choice([b"[1, 2, 3]", b'"just a string"', b"42", b"null", b"true"])
        elif kind == "no-type":
            value = _json({"command_id": command_id, "actor_id": "someone", "offer_id": key})
        elif kind == "unknown-type":
            value = _json({"type": "LaunchRocket", "command_id": command_id, "actor_id": "x"})
        elif kind == "tombstone":
            value = None
        elif kind == "over-1-mib":
            value = _json(
                {
                    "type": "PostMessage",
                    "command_id": command_id,
                    "actor_id": "x",
                    "offer_id": key,
                    "message_id": "m-1",
                    "text": "x" * (1024 * 1024 + 512),
                }
            )
        elif kind == "deep-nesting":
            value = b'{"type": "ExtendOffer", "terms": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        elif kind in HOSTILE_KINDS:
            fate = "rejected"
            topic = HOSTILE_TOPICS.get(kind, topic)
            value, record_key = _hostile(kind, topic, key, new_command_id)
            step = Step(topic, record_key, value)
        else:
            fate = "rejected"
            value, command_id = _invalid(kind, topic, key, new_command_id)
        if fate == "dead-letter":
            command_id = None
        if kind not in HOSTILE_KINDS:
            step = Step(topic, key, value)
        digest = hashlib.sha256(step.encoded() or b"").hexdigest()
        code = None
        if kind in HOSTILE_KINDS:
            code = "wrong_key" if kind in KEY_KINDS else "invalid_command"
        malformed = Malformed(step, kind, fate, command_id, digest, code=code)
        self.malformed.append(malformed)
        return malformed


MALFORMED_KINDS = (
    "not-json",
    "not-an-object",
    "no-type",
    "unknown-type",
    "invalid-fields",
    "unknown-field",
    "no-command-id",
    "not-json",
    "invalid-fields",
    "not-utf8",
)
# What a hostile producer sends (issue "No poison record"): each is refused once, on its field
# or for its key, and stops no partition.
HOSTILE_KINDS = (
    "end-of-calendar",
    "nul-in-key",
    "wrong-key",
    "no-key",
    "control-characters",
    "dotted-custom-field",
    "beyond-64-bits",
    "proposal-to-year-9999",
)
KEY_KINDS = ("nul-in-key", "wrong-key", "no-key")
# The hostile kinds whose command belongs on one topic; the others go on each in turn.
HOSTILE_TOPICS = {
    "end-of-calendar": topics.OFFERS_COMMANDS,
    "control-characters": topics.OFFERS_COMMANDS,
    "dotted-custom-field": topics.OFFERS_COMMANDS,
    "beyond-64-bits": topics.OFFERS_COMMANDS,
    "proposal-to-year-9999": topics.NEGOTIATIONS_COMMANDS,
}
RARE_KINDS = ("tombstone",)  # "over-1-mib" stalls offer_service: tests/faults/test_oversized.py


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def _invalid(kind: str, topic: str, key: str, command_id: str) -> tuple[bytes, str | None]:
    """A command of the topic's own kind that breaks a rule: one CommandRejected."""
    base: dict[str, Any] = {"command_id": command_id, "actor_id": "someone"}
    if kind == "no-command-id":
        del base["command_id"]
    body: dict[str, Any]
    if topic == topics.OFFERS_COMMANDS:
        body = {"type": "AcceptOffer", "offer_id": key, "version": "first"}
    elif topic == topics.NEGOTIATIONS_COMMANDS:
        body = {"type": "PostMessage", "offer_id": key, "message_id": "m-1", "text": ""}
    elif topic == topics.CONTRACTS_COMMANDS:
        body = {
            "type": "LogTime",
            "contract_id": key,
            "entry_id": "e-1",
            "work_date": "2026-13-45",
            "hours": "-1",
        }
    else:
        body = {"type": "MarkNotificationsRead", "recipient_id": key, "notification_ids": []}
    if kind == "unknown-field":
        body = {**body, "colour": "blue"}
        # Otherwise valid, so that the unknown field is the one problem.
        body.update(_valid_fields(topic))
    return _json({**body, **base}), base.get("command_id")


def _hostile(kind: str, topic: str, key: str, command_id: str) -> tuple[bytes, str | None]:
    """A hostile command for the topic, and the key it is published with."""
    base: dict[str, Any] = {"command_id": command_id, "actor_id": "someone"}
    terms: dict[str, Any] = {
        "title": "t",
        "description": "d",
        "contract_type": "hourly",
        "hourly_rate": "45.00",
        "start_date": (date.today() + timedelta(days=1)).isoformat(),
        "end_date": (date.today() + timedelta(days=30)).isoformat(),
    }
    extend = {
        "type": "ExtendOffer",
        "offer_id": key,
        "job_id": "job-1",
        "proposal_id": "prop-1",
        "client_id": "client-x",
        "freelancer_id": "free-x",
    }
    by_topic: dict[str, dict[str, Any]] = {
        topics.OFFERS_COMMANDS: {"type": "AcceptOffer", "offer_id": key, "version": 1},
        topics.NEGOTIATIONS_COMMANDS: {
            "type": "PostMessage",
            "offer_id": key,
            "message_id": "m-1",
            "text": "hello",
        },
        topics.CONTRACTS_COMMANDS: {
            "type": "LogTime",
            "contract_id": key,
            "entry_id": "e-1",
            "work_date": date.today().isoformat(),
            "hours": "2",
        },
        topics.NOTIFICATIONS_COMMANDS: {
            "type": "MarkNotificationsRead",
            "recipient_id": key,
            "notification_ids": ["n-1"],
        },
    }
    body = by_topic[topic]
    record_key_: str | None = key
    if kind == "end-of-calendar":
        body = {**extend, "terms": {**terms, "start_date": "9999-12-31", "end_date": "9999-12-31"}}
    elif kind == "nul-in-key":
        record_key_ = f"ghost\x00{key}"
    elif kind == "wrong-key":
        record_key_ = f"k{key[-1]}"
    elif kind == "no-key":
        record_key_ = None
    elif kind == "control-characters":
        body = {**extend, "terms": {**terms, "title": "tab\there", "description": "nul\x00"}}
    elif kind == "dotted-custom-field":
        body = {**extend, "terms": {**terms, "custom_fields": {"a.b": 1, "$where": "x"}}}
    elif kind == "beyond-64-bits":
        body = {**extend, "terms": {**terms, "custom_fields": {"n": 2**70}}}
    elif kind == "proposal-to-year-9999":
        changes = {"start_date": "9999-01-01", "end_date": "9999-12-31"}
        body = {"type": "ProposeTerms", "offer_id": key, "message_id": "m-1", "changes": changes}
    return _json({**body, **base}), record_key_


def _valid_fields(topic: str) -> dict[str, Any]:
    fields: dict[str, dict[str, Any]] = {
        topics.OFFERS_COMMANDS: {"version": 1},
        topics.NEGOTIATIONS_COMMANDS: {"text": "hello"},
        topics.CONTRACTS_COMMANDS: {"work_date": "2026-12-01", "hours": "2"},
        topics.NOTIFICATIONS_COMMANDS: {"notification_ids": ["n-1"]},
    }
    return fields[topic]


def interleave(stories: list[list[Step]], rng: random.Random) -> list[Step]:
    """The stories' steps merged in random order, each story's own order kept."""
    pending = [list(reversed(story)) for story in stories if story]
    merged: list[Step] = []
    while pending:
        story = rng.choice(pending)
        merged.append(story.pop())
        if not story:
            pending.remove(story)
    return merged


def scatter(valid: list[Step], extra: list[Step], rng: random.Random) -> list[Step]:
    """`extra` spread at random among `valid`, whose own order is kept."""
    total = len(valid) + len(extra)
    slots = set(rng.sample(range(total), len(extra)))
    extra_left, valid_left = iter(extra), iter(valid)
    return [next(extra_left) if n in slots else next(valid_left) for n in range(total)]


async def send_among_stories(
    sender: Sender,
    stories: list[list[Step]],
    bad: list[Malformed],
    rng: random.Random,
    *,
    last: int,
) -> list[Position]:
    """Sends the bad records anywhere among the stories' steps (each story's order kept),
    and the last `last` stories after them all, so that a consumer stuck behind a bad
    record shows; sets each bad record's position. Returns every record's position."""
    merged = scatter(interleave(stories[:-last], rng), [m.step for m in bad], rng)
    merged += interleave(stories[-last:], rng)
    written = await sender.send_all(merged)
    where = {id(step): position for step, position in zip(merged, written, strict=True)}
    for m in bad:
        m.position = where[id(m.step)]
    return written
