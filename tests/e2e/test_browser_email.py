"""The page's email settings in headless Chromium: a freelancer chooses email for offers on
the page (an invalid address is shown beside its field), a client extends an offer on the
page, and the freelancer's email reaches the mail catcher. Its own ports (4852x), so that
it can run beside test_browser.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect

from services.mailcatcher import text_of
from tests.conftest import RUN_ID
from tests.e2e.processes import launch
from tests.e2e.test_browser import (
    browser,
    extend_an_offer,
    no_script_errors,
    page_served,
    window,
)
from tests.e2e.test_email_faults import launch_with_mail
from tests.infrastructure import Endpoints
from tests.kit import new_id
from tests.mail import infra_mail_dir, infra_smtp_url, wait_for_mail

pytestmark = pytest.mark.e2e

__all__ = ["browser"]  # the fixture, shared with test_browser.py

# Below the ephemeral range (32768-60999 on Linux): no client connection can hold them when
# the services bind (48520 did, once, and the gateway could not start).
GATEWAY_PORT = 18530
PORTS = {"offer_service": 18531, "messaging_service": 18532, "notification_service": 18533}


@pytest.fixture(scope="module")
async def gateway(infra: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    logs = tmp_path_factory.mktemp("browser-email-logs")
    run = RUN_ID + "be"
    services = {
        name: await launch(name, PORTS[name], infra, logs, run)
        for name in ("offer_service", "messaging_service")
    }
    name = "notification_service"  # sending to the tests' catcher
    services[name] = await launch_with_mail(name, PORTS[name], infra, logs, run, infra_smtp_url())
    async with page_served(infra, logs, services, GATEWAY_PORT) as url:
        yield url


async def test_a_freelancer_chooses_email_on_the_page_and_gets_the_offer_by_email(
    gateway: str, browser: Browser
) -> None:
    ann, bob = new_id("client-ann"), new_id("free-bob")
    address = f"{bob}@example.com"
    # The link at the foot of every email opens the settings.
    freelancer = await window(browser, f"{gateway}/?as={bob}&role=freelancer&settings=email")
    form = freelancer.locator("#email-form")
    await expect(form).to_be_visible()
    await expect(freelancer.locator("#email-saved")).to_have_text("no email")
    await form.locator("[name=email]").fill("bob-at-example.com")
    await form.locator("[name=kind][value=offer_received]").check()
    await form.locator("button[type=submit]").click()
    await expect(form.locator('[data-field="email"] .error')).to_contain_text("@")
    await form.locator("[name=email]").fill(address)
    await form.locator("button[type=submit]").click()
    await expect(freelancer.locator("#email-saved")).to_have_text(f"emailing {address}")

    client = await window(browser, f"{gateway}/?as={ann}&role=client")
    await extend_an_offer(client, bob, "Checkout redesign")
    [mail] = await wait_for_mail(infra_mail_dir(), address, 1)
    assert mail["Subject"] == "Offer received: Checkout redesign"
    assert f"as={bob}" in text_of(mail)
    no_script_errors(client, freelancer)
