"""The owner console in Debian's Chromium, driven by Playwright, on the whole platform (`deep demo`): two
Discord users sign in through the emulator's OAuth2, one upgrades through Checkout, imports a V3 card,
edits a trait, deploys it into her server where it answers, watches the analytics fill and publishes it;
the other deploys a copy from the gallery.

No model endpoint (the offline persona responder answers) and no internet: a page that fetched anything
from another origin would fail here. Set CONSOLE_SCREENSHOTS=docs to refresh the README's screenshots.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, expect

from emulator.discord import EmulatorControl
from settings import REPO_ROOT, Settings
from tests.api.test_api_billing import checkout_completed, signed, subscription_event
from tests.api.test_api_characters import v3_card
from tests.demo.test_demo_browser import ANSWER_MS, RunningDemo
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

CARD_NAME = v3_card()["data"]["name"]
# Stripe's hosted Checkout page: out of reach offline, so the browser is answered here and the payment is
# confirmed by the webhook Stripe would send.
CHECKOUT_PAGES = "https://checkout.stripe.com/"


@dataclass(frozen=True)
class Person:
    """A Discord user with a server of her own (one text channel) and a bot in it."""

    user_id: str
    username: str
    guild_id: str
    guild_name: str
    channel_id: str
    bot_id: str
    bot_token: str


async def new_person(control: EmulatorControl, username: str) -> Person:
    user = await control.add_user(username)
    guild = await control.add_guild(f"{username}'s server", owner_id=user["id"])
    await control.add_member(guild["id"], user["id"])
    channel = await control.add_channel(guild["id"], "lobby")
    bot = await control.add_bot(username=f"{username}-bot", guild_ids=[guild["id"]])
    return Person(user["id"], username, guild["id"], guild["name"], channel["id"], bot["id"], bot["token"])


@dataclass(frozen=True)
class People:
    ada: Person
    bea: Person


@pytest.fixture(scope="module")
async def control(demo: RunningDemo) -> AsyncIterator[EmulatorControl]:
    async with EmulatorControl(demo.emulator_url) as client:
        yield client


@pytest.fixture(scope="module")
async def people(control: EmulatorControl) -> People:
    suffix = uuid.uuid4().hex[:6]
    return People(await new_person(control, f"ada{suffix}"), await new_person(control, f"bea{suffix}"))


@pytest.fixture(scope="module")
async def page(demo: RunningDemo, browser: Browser) -> AsyncIterator[Page]:
    opened = await browser.new_page(viewport={"width": 1400, "height": 900})
    remote: list[str] = []
    # Anything asked of another origin is refused and remembered: every page must work offline.
    await opened.route(
        lambda url: not url.startswith((demo.api_url, demo.emulator_url)), lambda route: refuse(route, remote)
    )
    yield opened
    await opened.close()
    assert [url for url in remote if not url.startswith(CHECKOUT_PAGES)] == []


async def refuse(route: Route, remote: list[str]) -> None:
    remote.append(route.request.url)
    await route.fulfill(status=200, content_type="text/html", body="<p>offline</p>")


async def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    await page.screenshot(path=tmp_path / f"{name}.png")
    if folder := os.environ.get("CONSOLE_SCREENSHOTS"):
        await page.screenshot(path=REPO_ROOT / folder / f"{name}.png")


async def open_page(page: Page, name: str) -> None:
    """Through the navigation, as the person would; returns once the page has drawn."""
    await page.locator(f"#nav a[data-page='{name}']").click()
    await expect(page.locator("#view")).to_have_attribute("data-shown", f"#/{name}")


async def visit(page: Page, demo: RunningDemo, address: str) -> None:
    """The console at `address` (e.g. #/billing), loaded afresh."""
    await page.goto(f"{demo.api_url}/console/{address}")
    await page.reload()
    await expect(page.locator("#view")).to_have_attribute("data-shown", address)


async def sign_in(page: Page, demo: RunningDemo, person: Person) -> None:
    """As the person would: the console's button, Discord's consent (the emulator approves at once for
    the user it has signed in) and back."""
    async with httpx.AsyncClient(base_url=demo.emulator_url) as emulator:
        chosen = await emulator.put("/_control/oauth2/user", json={"user_id": person.user_id})
        assert chosen.status_code == 204, chosen.text
    await page.goto(f"{demo.api_url}/console/")
    await page.locator("#sign-in").click()
    await expect(page.locator("#who")).to_contain_text(person.username)
    await expect(page.locator("#nav")).to_be_visible()


async def upgrade_to_pro(page: Page, demo: RunningDemo, settings: Settings) -> None:
    """Pro through Checkout: the console opens Stripe's page; Stripe tells the API by a signed webhook."""
    await visit(page, demo, "#/billing")
    me = await page.evaluate("fetch('/me').then(answer => answer.json())")
    async with page.expect_response(lambda r: r.url.endswith("/billing/checkout")) as answer:
        await page.locator("[data-tier='pro'] button.choose").click()
    assert (await answer.value).status == 201
    await page.wait_for_url(lambda url: url.startswith(CHECKOUT_PAGES))
    paid = checkout_completed(me["owner"]["owner_id"], "pro", f"sub_{uuid.uuid4().hex}")
    body, headers = signed(paid, settings.stripe_webhook_secret)
    async with httpx.AsyncClient(base_url=demo.api_url) as api:
        sent = await api.post("/billing/webhook", content=body, headers=headers)
    assert sent.status_code == 204, sent.text


async def deploy(page: Page, agent: str, person: Person) -> None:
    """Add the person's bot token, then deploy `agent` into her server's channel."""
    await open_page(page, "deploy")
    await page.locator("#token-input").fill(person.bot_token)
    await page.locator("#add-token").click()
    await expect(page.locator("#tokens tr", has_text=f"{person.username}-bot")).to_be_visible()
    # Stored, never shown again: not in the field, not anywhere on the page.
    assert person.bot_token not in await page.content()
    await page.locator("#deploy-agent").select_option(label=agent)
    await page.locator("#deploy-token").select_option(label=f"{person.username}-bot")
    await page.locator("#deploy-guild").select_option(label=person.guild_name)
    # The server's channels, as its bot sees them: tick the one to answer in.
    await page.locator("#deploy-text-channels label", has_text="lobby").locator("input").check()
    await page.locator("#deploy").click()
    row = page.locator(f"#deployments tr[data-agent='{agent}']")
    await expect(row.locator(".status")).to_have_text("active")


async def test_signing_in_with_discord_makes_a_free_owner(
    page: Page, demo: RunningDemo, people: People
) -> None:
    await page.goto(f"{demo.api_url}/console/")
    await expect(page.locator("#sign-in")).to_be_visible()
    await sign_in(page, demo, people.ada)
    await expect(page.locator("#who")).to_contain_text("free")


async def import_card(page: Page, tmp_path: Path) -> None:
    """The V3 card as a JSON file, chosen and imported on the agents page."""
    card = tmp_path / "card.json"
    card.write_text(json.dumps(v3_card()))
    await open_page(page, "agents")
    await page.locator("#card-file").set_input_files(card)
    await page.locator("#import").click()


async def test_a_free_owner_cannot_import_a_custom_character(page: Page, tmp_path: Path) -> None:
    await import_card(page, tmp_path)
    await expect(page.locator("#agents-status")).to_contain_text("custom personalities")


async def test_a_free_owner_is_offered_an_upgrade_for_analytics(page: Page) -> None:
    await open_page(page, "analytics")
    prompt = page.locator("#analytics-upgrade")
    await expect(prompt).to_contain_text("not part of the free plan")
    await prompt.locator("a[href='#/billing']").click()
    await expect(page.locator("#view")).to_have_attribute("data-shown", "#/billing")


async def test_upgrading_through_checkout_raises_the_limits(
    page: Page, demo: RunningDemo, stack_up: Settings, tmp_path: Path
) -> None:
    await visit(page, demo, "#/deploy")
    await expect(page.locator("#limits")).to_contain_text("Tier: free")
    await upgrade_to_pro(page, demo, stack_up)
    # Back from Checkout at the return address the API gave Stripe.
    await page.goto(f"{demo.api_url}/console/#billing?checkout=done")
    await expect(page.locator("#checkout-done")).to_be_visible()
    await expect(page.locator("#plans [data-tier='pro']")).to_contain_text("current plan")
    await screenshot(page, "console-billing", tmp_path)
    await visit(page, demo, "#/deploy")
    await expect(page.locator("#limits")).to_contain_text("Tier: pro")
    await expect(page.locator("#limits")).to_contain_text("custom_personality")
    await expect(page.locator("#who")).to_contain_text("pro")


async def test_a_v3_card_imports_and_a_trait_edit_is_previewed_and_saved(page: Page, tmp_path: Path) -> None:
    await import_card(page, tmp_path)
    await expect(page.locator("#view h2")).to_have_text(f"Edit {CARD_NAME}")
    await page.locator("details[data-section='character'] > summary").click()
    extraversion = page.locator("#trait-extraversion")
    await extraversion.fill("90")
    # 4 ** ((90 - 50) / 50): the processors' own sociability, shown as the slider moves.
    effect = page.locator("#trait-effects tr[data-behaviour='odds of speaking unprompted'] .value")
    await expect(effect).to_have_text("x 3.03")
    await extraversion.scroll_into_view_if_needed()
    await screenshot(page, "console-editor", tmp_path)
    await page.locator("#save").click()
    await expect(page.locator("#save-status")).to_contain_text(f"Saved {CARD_NAME}")
    await page.reload()
    await expect(page.locator("#trait-extraversion")).to_have_value("90")


async def test_a_field_error_is_shown_at_its_field(page: Page) -> None:
    await page.locator("input[name='name']").fill("")
    await page.locator("#save").click()
    name = page.locator(".field[data-path='name']")
    await expect(name).to_have_class("field invalid")
    await expect(name.locator(".field-error")).to_contain_text("at least 1 character")
    await page.reload()


async def test_the_agent_answers_in_the_sandbox_before_it_is_deployed(page: Page, tmp_path: Path) -> None:
    await page.locator("#sandbox-input").fill("hello, who are you?")
    await page.locator("#sandbox-send").click()
    await expect(page.locator("#sandbox-log .line.agent").first).to_be_visible()
    await expect(page.locator("#sandbox-log .decision").first).to_contain_text("because mentioned")
    # This platform runs no model endpoint: the page says so, and the offline persona answered.
    source = page.locator("#sandbox-log .source").first
    await expect(source).to_have_attribute("data-source", "persona")
    await expect(source).to_contain_text("No model endpoint is configured")
    await page.locator("#sandbox").scroll_into_view_if_needed()
    await screenshot(page, "console-sandbox", tmp_path)


async def test_the_agent_deployed_into_a_guild_answers_there(
    page: Page, control: EmulatorControl, people: People, tmp_path: Path
) -> None:
    ada = people.ada
    await deploy(page, CARD_NAME, ada)
    await screenshot(page, "console-deploy", tmp_path)

    async def connected() -> bool:
        return bool((await control.stats(ada.bot_id))["connected_sessions"])

    # The gateway runner connects the bot once the deployment reaches it: Discord tells only a connected bot.
    await wait_until(connected, f"{ada.username}-bot connected", timeout_s=ANSWER_MS / 1000)
    question = f"<@{ada.bot_id}> hello, who are you?"
    asked = await control.post_user_message(ada.user_id, question, ada.channel_id)

    async def answered() -> bool:
        history = await control.history(ada.channel_id)
        return any(m["author"]["id"] == ada.bot_id and int(m["id"]) > int(asked["id"]) for m in history)

    await wait_until(answered, f"{CARD_NAME} answering in the emulator", timeout_s=ANSWER_MS / 1000)
    row = page.locator(f"#deployments tr[data-agent='{CARD_NAME}']")
    await row.locator("button.pause").click()
    await expect(row.locator(".status")).to_have_text("paused")
    await page.locator(f"#deployments tr[data-agent='{CARD_NAME}'] button.resume").click()
    await expect(page.locator(f"#deployments tr[data-agent='{CARD_NAME}'] .status")).to_have_text("active")


async def test_the_analytics_charts_fill(page: Page, tmp_path: Path) -> None:
    await open_page(page, "analytics")
    traffic = page.locator("#chart-traffic")
    # The sinks write in batches: ask again until the owner's first messages are counted.
    deadline = time.monotonic() + ANSWER_MS / 1000
    while await page.locator("#by-agent td", has_text=CARD_NAME).count() == 0:
        assert time.monotonic() < deadline, "the analytics never showed the agent's traffic"
        await page.locator("#refresh").click()
        await page.wait_for_timeout(1000)
    assert int(await traffic.get_attribute("data-total") or 0) > 0
    await expect(traffic.locator("canvas")).to_be_visible()
    await expect(page.locator("#decisions-by-reason td", has_text="mentioned")).to_be_visible()
    await screenshot(page, "console-analytics", tmp_path)


async def test_publishing_puts_the_agent_in_the_gallery(page: Page, tmp_path: Path) -> None:
    await open_page(page, "agents")
    await page.locator(f"#agents .card[data-agent='{CARD_NAME}'] button.publish").click()
    await expect(page.locator("#agents-status")).to_contain_text("in the gallery")
    await screenshot(page, "console-agents", tmp_path)
    await open_page(page, "gallery")
    mine = page.locator(f"#gallery .card[data-name='{CARD_NAME}']")
    await expect(mine.locator("button.unpublish")).to_be_visible()


async def test_a_second_owner_deploys_a_copy_from_the_gallery(
    page: Page,
    demo: RunningDemo,
    control: EmulatorControl,
    people: People,
    stack_up: Settings,
    tmp_path: Path,
) -> None:
    await page.locator("#sign-out").click()
    await expect(page.locator("#sign-in")).to_be_visible()
    await sign_in(page, demo, people.bea)
    # The copy keeps the card's custom personality: Bea upgrades first, as Ada did.
    await upgrade_to_pro(page, demo, stack_up)
    await visit(page, demo, "#/gallery")
    card = page.locator(f"#gallery .card[data-name='{CARD_NAME}']")
    await expect(card.locator("button.unpublish")).to_have_count(0)
    await card.locator("button.preview").click()
    await expect(page.locator("#gallery-preview")).to_contain_text(CARD_NAME)
    await screenshot(page, "console-gallery", tmp_path)
    await card.locator("button.copy").click()
    await expect(page.locator("#view h2")).to_have_text(f"Edit {CARD_NAME}")
    await deploy(page, CARD_NAME, people.bea)


async def test_a_revoked_token_shows_in_token_health_and_the_inbox(
    page: Page, demo: RunningDemo, control: EmulatorControl, people: People
) -> None:
    bea = people.bea
    await control.revoke_token(bea.bot_id)
    await open_page(page, "deploy")
    await page.locator("#tokens tr", has_text=f"{bea.username}-bot").locator("button.check").click()
    status = page.locator("#tokens tr", has_text=f"{bea.username}-bot").locator(".status")
    await expect(status).to_have_text("revoked")

    # The owner is told through owner.notifications, which the API reads into the inbox.
    async def told() -> bool:
        await visit(page, demo, "#/inbox")
        return await page.locator("#inbox tr[data-kind='token_revoked']").count() > 0

    await wait_until(told, "the revoked token in the inbox", timeout_s=ANSWER_MS / 1000, every_s=1.0)


async def test_the_author_unpublishes_from_the_gallery(page: Page, demo: RunningDemo, people: People) -> None:
    await page.locator("#sign-out").click()
    await sign_in(page, demo, people.ada)
    await open_page(page, "gallery")
    card = page.locator(f"#gallery .card[data-name='{CARD_NAME}']")
    await card.locator("button.unpublish").click()
    await expect(card).to_have_count(0)


async def test_cancelling_the_subscription_brings_the_free_tier_when_stripe_confirms(
    page: Page, demo: RunningDemo, stack_up: Settings
) -> None:
    await visit(page, demo, "#/billing")
    subscription = await page.evaluate("fetch('/billing/subscription').then(answer => answer.json())")
    plans = await page.evaluate("fetch('/billing/plans').then(answer => answer.json())")
    await page.locator("[data-tier='free'] button.downgrade").click()
    await expect(page.locator("#billing-status")).to_contain_text("being cancelled")
    await expect(page.locator("#who")).to_contain_text("pro")
    pro_price = next(plan["price_id"] for plan in plans if plan["tier"] == "pro")
    ended = subscription_event(
        "customer.subscription.deleted", subscription["subscription_id"], "canceled", pro_price
    )
    body, headers = signed(ended, stack_up.stripe_webhook_secret)
    async with httpx.AsyncClient(base_url=demo.api_url) as api:
        sent = await api.post("/billing/webhook", content=body, headers=headers)
    assert sent.status_code == 204, sent.text
    await visit(page, demo, "#/billing")
    await expect(page.locator("#plans [data-tier='free']")).to_contain_text("current plan")
    await expect(page.locator("#who")).to_contain_text("free")
