"""Two parties negotiate in two browser windows: headless Chromium (Debian's, driven by
Playwright) on the page the gateway serves, with the three services and the gateway running
as processes, as `make run` starts them. Nothing here talks to Kafka or a service directly:
every step is what a person does on the page."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from tests.conftest import RUN_ID
from tests.e2e.processes import ServiceProcess, gateway_process, launch
from tests.infrastructure import Endpoints
from tests.kit import new_id

pytestmark = pytest.mark.e2e

GATEWAY_PORT = 18520
PORTS = {"offer_service": 18521, "messaging_service": 18522, "notification_service": 18523}
# A step's effect reaches the other window through Kafka, a service and a stream (or a poll).
SOON = 20_000
expect.set_options(timeout=SOON)
# Set to a path to keep a picture of the negotiation (the README's docs/negotiation.png).
SCREENSHOT = os.environ.get("BROWSER_TEST_SCREENSHOT")


def chromium() -> str:
    """Debian's Chromium (Playwright's own browser downloads are not possible here)."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    pytest.fail(
        "Chromium is not installed, so the browser test cannot run: `infra/browser.sh` "
        "installs Debian's chromium (`make test` runs it), or set CHROMIUM_PATH",
        pytrace=False,
    )


@asynccontextmanager
async def page_served(
    infra: Endpoints, logs: Path, services: dict[str, ServiceProcess], port: int
) -> AsyncIterator[str]:
    """The gateway in front of these (started) services, all healthy; its URL. Stops all."""
    front = gateway_process(port, infra, logs, services)
    front.start()
    try:
        for process in (*services.values(), front):
            await asyncio.to_thread(process.wait_healthy)
        yield front.url
    finally:
        for process in (front, *services.values()):
            process.stop()


@pytest.fixture(scope="module")
async def gateway(infra: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    logs = tmp_path_factory.mktemp("browser-logs")
    services = {name: await launch(name, port, infra, logs, RUN_ID) for name, port in PORTS.items()}
    async with page_served(infra, logs, services, GATEWAY_PORT) as url:
        yield url


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    path = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path)
        yield launched
        await launched.close()


async def window(browser: Browser, url: str) -> Page:
    """A window of its own (its own browser context), as a second person would have."""
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    page = await context.new_page()
    errors = SCRIPT_ERRORS.setdefault(page, [])
    page.on("pageerror", lambda error: errors.append(str(error)))
    # The gateway's Content-Security-Policy must not block anything the page itself does.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.set_default_timeout(SOON)
    await page.goto(url)
    return page


SCRIPT_ERRORS: dict[Page, list[str]] = {}


def no_script_errors(*pages: Page) -> None:
    for page in pages:
        assert SCRIPT_ERRORS[page] == [], SCRIPT_ERRORS[page]


async def extend_an_offer(client: Page, freelancer_id: str, title: str) -> str:
    """Extends an offer in a Talent Cloud of its own, and returns the cloud: a cloud belongs
    to the client that first names it, and each test has clients of its own."""
    cloud = new_id("tc")
    await client.click("#new-offer")
    form = client.locator("#offer-form")
    await form.locator("[name=freelancer_id]").fill(freelancer_id)
    await form.locator("[name=title]").fill(title)
    await form.locator("[name=description]").fill("The checkout flow, as agreed in the interview.")
    await form.locator("[name=hourly_rate]").fill("45.00")
    await form.locator("[name=weekly_limit_hours]").fill("30")
    await form.locator("[name=talent_cloud_id]").fill(cloud)
    await form.locator("[name=po_number]").fill("PO-2026-0042")
    await client.click("#add-custom-field")
    await form.locator("[name=cf_key]").fill("cost_center")
    await form.locator("[name=cf_value]").fill("R&D-12")
    await form.locator("[name=message]").fill("Welcome aboard")
    await client.click("#send-offer")
    await expect(client.locator("#offer-status")).to_have_text("pending")
    return cloud


async def post(page: Page, text: str) -> None:
    await page.locator("#chat-form [name=text]").fill(text)
    await page.click("#chat-form button[type=submit]")
    await expect(page.locator("#chat-form [name=text]")).to_have_value("")  # sent and answered


def message(page: Page, text: str) -> Locator:
    return page.locator("#thread li.message .text", has_text=re.compile(f"^{re.escape(text)}$"))


async def test_two_parties_negotiate_a_contract_in_two_windows(
    gateway: str, browser: Browser, tmp_path: Path
) -> None:
    ann, bob = new_id("client-ann"), new_id("free-bob")
    client = await window(browser, f"{gateway}/?as={ann}&role=client")
    freelancer = await window(browser, f"{gateway}/?as={bob}&role=freelancer")

    # An invalid offer: every problem shown beside its field, and nothing sent.
    await client.click("#new-offer")
    form = client.locator("#offer-form")
    await form.locator("[name=freelancer_id]").fill(bob)
    await form.locator("[name=hourly_rate]").fill("-5")
    await form.locator("[name=weekly_limit_hours]").fill("200")
    await form.locator("[name=start_date]").fill("2027-01-10")
    await form.locator("[name=end_date]").fill("2027-01-01")
    await client.click("#send-offer")
    for field, problem in (
        ("terms.title", "is required"),
        ("terms.description", "is required"),
        ("terms.hourly_rate", "must be"),
        ("terms.weekly_limit_hours", "must be at most 168"),
        ("terms.end_date", "must not be before start_date"),
    ):
        beside = form.locator(f'[data-field="{field}"]')
        await expect(beside).to_have_class(re.compile(r"\binvalid\b"))
        await expect(beside.locator(".error")).to_contain_text(problem)
    await expect(form.locator(".form-errors")).to_contain_text("ExtendOffer is invalid: 5 problems")
    await client.click("#cancel-offer")
    await expect(client.locator("#offers")).to_contain_text("no offers yet")

    # The client extends a valid offer; the freelancer is told, live, and opens it.
    cloud = await extend_an_offer(client, bob, "Checkout redesign")
    received = freelancer.locator('#inbox [data-kind="offer_received"]')
    await expect(received).to_have_count(1)
    await expect(freelancer.locator("#unread-count")).to_have_text("1")
    await received.get_by_role("button", name="Open").click()
    await expect(freelancer.locator("#accept")).to_have_text("Accept version 1")
    await expect(freelancer.locator('#versions [data-version="1"]')).to_contain_text("45.00")

    # They talk; the freelancer proposes a higher rate.
    await post(freelancer, "Hello! Could we talk about the rate?")
    await expect(message(client, "Hello! Could we talk about the rate?")).to_have_count(1)
    await post(client, "Sure, what did you have in mind?")
    await expect(message(freelancer, "Sure, what did you have in mind?")).to_have_count(1)
    # A proposal the gateway passes but messaging_service refuses (the terms it would make
    # end before they start): the CommandRejected comes later, beside its field all the same.
    await freelancer.click("#propose summary")
    await freelancer.locator("#propose-form [name=end_date]").fill("2020-01-01")
    await freelancer.click("#propose-form button[type=submit]")
    refused = freelancer.locator('#propose-form [data-field="changes.end_date"]')
    await expect(refused.locator(".error")).to_contain_text("must not be before start_date")
    await expect(freelancer.locator("#propose-form .form-errors")).to_contain_text(
        "the proposed terms break 1 rule"
    )
    await freelancer.locator("#propose-form [name=end_date]").fill("")
    await freelancer.locator("#propose-form [name=hourly_rate]").fill("55.00")
    await freelancer.locator("#propose-form [name=text]").fill("55/h would work for me")
    await freelancer.click("#propose-form button[type=submit]")
    proposal = client.locator("#thread li.terms_proposal")
    await expect(proposal.locator('tr[data-field="hourly_rate"]')).to_contain_text("45.00")
    await expect(proposal.locator('tr[data-field="hourly_rate"] .new')).to_have_text("55.00")

    # The client answers the proposal with a different offer, pre-filled from it.
    await proposal.get_by_role("button", name="Answer with a new offer…").click()
    await expect(form.locator("[name=hourly_rate]")).to_have_value("55.00")
    await expect(form.locator("[name=title]")).to_have_value("Checkout redesign")
    await expect(client.locator("#responding")).to_contain_text("proposal")
    await form.locator("[name=hourly_rate]").fill("50.00")
    await form.locator("[name=message]").fill("Meet at 50?")
    await client.click("#send-offer")
    version_2 = client.locator('#versions [data-version="2"]')
    await expect(version_2.locator('tr[data-field="hourly_rate"] .old')).to_have_text("45.00")
    await expect(version_2.locator('tr[data-field="hourly_rate"] .new')).to_have_text("50.00")
    await expect(proposal).to_contain_text("answered by version 2")

    # The freelancer sees version 2 arrive and accepts it; both see the contract.
    await expect(freelancer.locator("#accept")).to_have_text("Accept version 2")
    await expect(freelancer.locator('#versions [data-version="2"]')).to_contain_text("50.00")
    await freelancer.click("#accept")
    for page in (freelancer, client):
        await expect(page.locator("#offer-status")).to_have_text("accepted")
        await expect(page.locator("#contract")).to_contain_text("active")
        await expect(page.locator("#contract")).to_contain_text("50.00 USD/h")
        await expect(page.locator("#contract")).to_contain_text(f"Talent Cloud {cloud}")
        await expect(page.locator("#chat-form")).to_be_hidden()
    await expect(client.locator('#inbox [data-kind="contract_active"]')).to_have_count(1)

    # The inbox: unread counts, and mark-read that the service keeps.
    for kind in ("offer_received", "offer_changed", "contract_active", "talent_cloud_joined"):
        await expect(freelancer.locator(f'#inbox [data-kind="{kind}"]')).to_have_count(1)
    await expect(freelancer.locator("#unread-count")).to_have_text("5")  # and new_message
    unread = 5
    await freelancer.click("#mark-all-read")
    await expect(freelancer.locator("#unread-count")).to_have_text("0")
    await asyncio.sleep(1.5)  # the service stores the marks; a fresh page reads them back
    await freelancer.reload()
    await expect(freelancer.locator("#inbox .notification.read")).to_have_count(unread)
    await expect(freelancer.locator("#unread-count")).to_have_text("0")

    # A third person who has the offer's address sees nothing of it: not the offer, not
    # the thread, not the other two's inboxes (the page reads as its own party).
    offer_id = parse_qs(urlparse(client.url).query)["offer"][0]
    eve = new_id("client-eve")
    stranger = await window(browser, f"{gateway}/?as={eve}&role=client&offer={offer_id}")
    await expect(stranger.locator("#offer-missing")).to_contain_text(
        f"There is no offer {offer_id} for {eve}"
    )
    await expect(stranger.locator("#offer")).to_be_hidden()
    await expect(stranger.locator("#offers")).to_contain_text("no offers yet")
    await expect(stranger.locator("#inbox .notification")).to_have_count(0)
    await expect(stranger.locator("#unread-count")).to_have_text("0")
    await expect(stranger.locator("#thread li")).to_have_count(0)

    if SCREENSHOT:
        await client.locator("#offer").scroll_into_view_if_needed()
        await client.screenshot(path=SCREENSHOT, full_page=True)
    no_script_errors(client, freelancer, stranger)


async def test_a_reconnect_in_the_middle_of_a_negotiation_misses_nothing(
    gateway: str, browser: Browser
) -> None:
    """Needs the pushed streams (issue 13, part 1): the page must be live on them, not
    polling, and resume from the last event id it saw."""
    ann, bob = new_id("client-ann"), new_id("free-bob")
    client = await window(browser, f"{gateway}/?as={ann}&role=client")
    await extend_an_offer(client, bob, "Logo")
    offer_url = client.url.replace(f"as={ann}&role=client", f"as={bob}&role=freelancer")
    freelancer = await window(browser, offer_url)
    await expect(freelancer.locator("#accept")).to_be_visible()
    await expect(freelancer.locator("#live-status")).to_have_attribute("data-mode", "stream")

    await post(client, "one")
    await expect(message(freelancer, "one")).to_have_count(1)

    # The freelancer's stream is dropped while the client writes on.
    await freelancer.click("#live-toggle")
    await expect(freelancer.locator("#live-status")).to_have_attribute("data-mode", "paused")
    await post(client, "two")
    await post(client, "three")
    await asyncio.sleep(1.0)
    await expect(message(freelancer, "two")).to_have_count(0)  # really not listening
    await freelancer.click("#live-toggle")
    await expect(freelancer.locator("#live-status")).to_have_attribute("data-mode", "stream")
    await expect(message(freelancer, "three")).to_have_count(1)

    # The page is closed and opened again while the client writes.
    await freelancer.close()
    await post(client, "four")
    freelancer = await window(browser, offer_url)
    await expect(message(freelancer, "four")).to_have_count(1)
    await post(client, "five")
    await expect(message(freelancer, "five")).to_have_count(1)
    texts = await freelancer.locator("#thread li.message .text").all_inner_texts()
    assert texts == ["one", "two", "three", "four", "five"], "each once, in order"
    no_script_errors(client, freelancer)


async def test_a_fixed_price_offer_with_milestones_and_custom_fields(
    gateway: str, browser: Browser
) -> None:
    ann, bob = new_id("client-ann"), new_id("free-bob")
    client = await window(browser, f"{gateway}/?as={ann}&role=client")
    await client.click("#new-offer")
    form = client.locator("#offer-form")
    await form.locator("[name=freelancer_id]").fill(bob)
    await form.locator("[name=title]").fill("Logo")
    await form.locator("[name=description]").fill("A logo in three variants.")
    await form.get_by_label("fixed price").check()
    await expect(form.locator("[name=hourly_rate]")).to_be_hidden()
    first = form.locator("#milestones > li").nth(0)
    await first.locator("[name=ms_description]").fill("Sketches")
    await first.locator("[name=ms_amount]").fill("500.00")
    await first.locator("[name=ms_due_date]").fill("2020-01-01")
    await client.click("#add-milestone")
    second = form.locator("#milestones > li").nth(1)
    await second.locator("[name=ms_description]").fill("   ")
    await second.locator("[name=ms_amount]").fill("300.00")
    await form.locator("[name=total_amount]").fill("900.00")
    await client.click("#add-custom-field")
    await form.locator("[name=cf_key]").fill("bad key!")
    await form.locator("[name=cf_value]").fill("R&D-12")
    await client.click("#send-offer")
    for field, problem in (
        ("terms.milestones.0.due_date", "must not be before start_date"),
        ("terms.milestones.1.description", "is required"),
        ("terms.total_amount", "must equal the sum of the milestone amounts (800.00)"),
        ("terms.custom_fields.bad key!", "key must be 1-64 characters"),
    ):
        beside = form.locator(f'[data-field="{field}"]')
        await expect(beside.locator(":scope > .error")).to_contain_text(problem)

    await first.locator("[name=ms_due_date]").fill("")
    await second.locator("[name=ms_description]").fill("Final files")
    await form.locator("[name=total_amount]").fill("")  # the milestones' sum
    await form.locator("[name=cf_key]").fill("cost_center")
    await client.click("#send-offer")
    await expect(client.locator("#offer-status")).to_have_text("pending")
    terms = client.locator('#versions [data-version="1"]')
    await expect(terms.locator('tr[data-field="total_amount"]')).to_contain_text("800.00")
    await expect(terms.locator('tr[data-field="milestones"]')).to_contain_text(
        "Sketches: 500.00; Final files: 300.00"
    )
    await expect(terms.locator('tr[data-field="custom_fields"]')).to_contain_text(
        "cost_center=R&D-12"
    )
    no_script_errors(client)


async def test_the_freelancer_declines_one_offer_and_the_client_withdraws_another(
    gateway: str, browser: Browser
) -> None:
    ann, bob = new_id("client-ann"), new_id("free-bob")
    client = await window(browser, f"{gateway}/?as={ann}&role=client")
    freelancer = await window(browser, f"{gateway}/?as={bob}&role=freelancer")
    await extend_an_offer(client, bob, "Landing page")
    await extend_an_offer(client, bob, "Newsletter")

    offers = freelancer.locator("#offers li")
    await expect(offers).to_have_count(2)
    await offers.filter(has_text="Landing page").get_by_role("button").click()
    await freelancer.locator("#close-reason").fill("Booked until spring")
    await freelancer.click("#decline")
    await expect(freelancer.locator("#offer-status")).to_have_text("declined")
    await expect(freelancer.locator("#accept")).to_be_hidden()
    await expect(client.locator('#inbox [data-kind="offer_declined"]')).to_have_count(1)
    await expect(client.locator("#offers li", has_text="Landing page")).to_contain_text("declined")

    # The client's page shows the newest offer, Newsletter: withdrawn, the freelancer told.
    await expect(client.locator("#offer-title")).to_have_text("Newsletter")
    await client.click("#withdraw")
    await expect(client.locator("#offer-status")).to_have_text("withdrawn")
    await expect(client.locator("#change")).to_be_hidden()
    await expect(freelancer.locator('#inbox [data-kind="offer_withdrawn"]')).to_have_count(1)
    await expect(freelancer.locator("#offers li", has_text="Newsletter")).to_contain_text(
        "withdrawn"
    )
    no_script_errors(client, freelancer)
