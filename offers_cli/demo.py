"""`offers demo`: a whole negotiation with fresh ids, each step told in plain language with
the `offers` command line that does it, so the demo doubles as a tutorial.

The client extends an hourly offer; the freelancer proposes a higher rate; the client answers
with a different offer (version 2); the freelancer accepts it; then the read APIs show the
active contract, the Talent Cloud membership and both parties' notifications.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import uuid
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from contracts import CommandRejected, ContractActivated, Event, OfferChanged
from offers_cli import render
from offers_cli.actions import make_command, say
from offers_cli.build import new_id
from offers_cli.bus import EVENT_TOPICS, Session
from offers_cli.config import Config
from offers_cli.errors import EXIT_OK, NotFound, Refused, Unavailable
from offers_cli.parser import build_parser
from offers_cli.read_api import ReadApi

T = TypeVar("T")
POLL_SECONDS = 0.3


class Demo:
    def __init__(self, session: Session, config: Config, timeout: float) -> None:
        self.session, self.config, self.timeout = session, config, timeout
        self.parser = build_parser()
        self.step = 0

    def api(self, actor: str) -> ReadApi:
        """The read APIs as ``actor`` sees them (each resource is shown to its parties)."""
        return ReadApi(self.config, actor=actor)

    def tell(self, text: str) -> None:
        self.step += 1
        say("", f"{self.step}. {text}")

    async def run(self, argv: list[str]) -> Event:
        """Runs one `offers` command line as the CLI would, and returns its answer."""
        say(f"   $ offers {shlex.join(argv)}")
        args = self.parser.parse_args(argv)
        command = await asyncio.to_thread(make_command, args, args.actor, self.api(args.actor))
        await self.session.send(command)
        event = await self.session.answer(command, self.timeout)
        say(*(f"   {line}" for line in render.outcome(event)))
        if isinstance(event, CommandRejected):
            raise Refused(f"demo step {self.step} ({command.type}) was rejected: {event.message}")
        return event

    async def until(self, what: str, probe: Callable[[], T | None]) -> T:
        """Polls a read API until ``probe`` finds what it looks for (404 counts as not yet)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                found = await asyncio.to_thread(probe)
            except NotFound:
                found = None
            if found is not None:
                return found
            if loop.time() >= deadline:
                raise Unavailable(f"demo step {self.step}: {what} after {self.timeout:g}s")
            await asyncio.sleep(POLL_SECONDS)

    async def inbox(self, recipient: str, kinds: Collection[str]) -> None:
        def complete() -> list[dict[str, Any]] | None:
            items = self.api(recipient).inbox(recipient)
            return items if set(kinds) <= {n["kind"] for n in items} else None

        items = await self.until(
            f"no notifications {', '.join(sorted(kinds))} for {recipient}", complete
        )
        say(f"   $ offers show inbox {recipient}")
        say(*(f"   {line}" for line in render.inbox_view(recipient, items)))


def run(args: argparse.Namespace, config: Config) -> int:
    return asyncio.run(negotiate(config, args.timeout))


async def negotiate(config: Config, within: float) -> int:
    tag = uuid.uuid4().hex[:6]
    client, freelancer, cloud = f"client-{tag}", f"freelancer-{tag}", f"tc-demo-{tag}"
    offer_id, proposal_id = new_id(), new_id()
    api = ReadApi(config)
    api.check()  # fail before publishing anything if a service is down
    say(
        f"A negotiation between client {client} and freelancer {freelancer}, "
        f"on Kafka {config.kafka}."
    )
    async with Session(config.kafka, EVENT_TOPICS) as session:
        demo = Demo(session, config, within)
        as_client, as_freelancer = demo.api(client), demo.api(freelancer)

        demo.tell(
            f"The client extends an hourly offer to {freelancer}: 45.00 USD/h, at most 30 h a "
            f"week, starting in 3 days, in Talent Cloud {cloud}."
        )
        await demo.run(
            ["extend", "--as", client, "--freelancer", freelancer, "--offer-id", offer_id,
             "--title", "Checkout redesign",
             "--description", "Redesign the checkout flow as agreed in the proposal.",
             "--rate", "45", "--weekly-limit", "30", "--start", "+3", "--end", "+93",
             "--talent-cloud", cloud, "--po-number", "PO-2026-0042",
             "--custom-field", "cost_center=R&D-12",
             "--message", "Looking forward to working with you!"]
        )  # fmt: skip

        demo.tell("The freelancer is notified, and asks for a higher rate: 55.00 USD/h.")
        await demo.run(
            ["propose", offer_id, "--as", freelancer, "--rate", "55",
             "--message-id", proposal_id,
             "--text", "Checkout work is delicate; could we do 55/h?"]
        )  # fmt: skip

        demo.tell(
            "The client makes a different offer in response: 50.00 USD/h (the terms are "
            "read from the read API and only the rate changes)."
        )
        # The client's screen reads the current terms from the read API: be sure it has them.
        await demo.until(
            f"offer {offer_id} is not in the read API", lambda: as_client.offer(offer_id)
        )
        changed = await demo.run(
            ["change", offer_id, "--as", client, "--rate", "50",
             "--in-response-to", proposal_id, "--message", "Shall we meet in the middle at 50/h?"]
        )  # fmt: skip
        if not isinstance(changed, OfferChanged) or changed.version != 2:
            raise Refused(f"demo step {demo.step}: expected the offer's version 2")

        demo.tell("The freelancer accepts version 2; offer_service activates the contract.")
        accepted = await demo.run(["accept", offer_id, "--as", freelancer, "--version", "2"])
        contract = await session.follow(accepted.event_id, "ContractActivated", within)
        if not isinstance(contract, ContractActivated):
            raise Unavailable(f"demo step {demo.step}: no ContractActivated within {within:g}s")
        say(*(f"   {line}" for line in render.outcome(contract)))
        contract_id = contract.contract_id

        demo.tell("The read API (offer_service) shows the contract, active:")

        def active_contract() -> dict[str, Any] | None:
            found = as_client.contract(contract_id)
            return found if found["status"] == "active" else None

        active = await demo.until(f"contract {contract_id} is not active", active_contract)
        say(f"   $ offers show contract {contract_id}")
        say(*(f"   {line}" for line in render.contract_view(active)))

        demo.tell(f"The freelancer joined Talent Cloud {cloud}:")

        def joined() -> list[dict[str, Any]] | None:
            found = as_freelancer.members(cloud)
            return found if freelancer in {m["freelancer_id"] for m in found} else None

        members = await demo.until(f"{freelancer} did not join {cloud}", joined)
        say(f"   $ offers show members {cloud}")
        say(*(f"   {line}" for line in render.members_list(cloud, members)))

        demo.tell("Both parties were notified along the way (notification_service):")
        await demo.inbox(client, {"terms_proposed", "offer_accepted", "contract_active"})
        await demo.inbox(
            freelancer,
            {"offer_received", "offer_changed", "contract_active", "talent_cloud_joined"},
        )

    say("", f"{render.OK} Done: contract {contract_id} is active at 50.00 USD/h.")
    return EXIT_OK
