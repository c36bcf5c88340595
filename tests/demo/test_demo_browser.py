"""`deep demo` end to end, in Debian's Chromium driven by Playwright: the whole platform in the demo world,
a person in the playground playing music, talking to Luna, spamming links, editing Luna, then Ctrl-C.

Runs `python -m demo run` as the person would (its own topic namespace, PostgreSQL schema, ports and
ClickHouse engine). Set DEMO_SCREENSHOT=docs/playground.png to refresh the README's screenshot.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from api.presets import all_presets
from demo.world import AGENTS
from infra.stack.service import free_ports
from memory.store import MemoryStore, connect
from settings import REPO_ROOT, Settings
from streams.admin import delete_namespace
from tests.demo.conftest import ensure_chromium
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

START_TIMEOUT_S = 180.0
# How long an answer may take through gateway, Kafka, processors, inference and back, on a busy machine.
ANSWER_MS = 45_000
NEW_CATCHPHRASE = "deep dive time~"


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@dataclass
class RunningDemo:
    process: asyncio.subprocess.Process
    url: str
    emulator_url: str
    # The configuration API, which serves the owner console at /console/.
    api_url: str
    namespace: str
    schema: str
    work_dir: Path
    output: list[str] = field(default_factory=list)

    async def read_output(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.output.append(line.decode(errors="replace").rstrip("\n"))

    async def stop(self, timeout_s: float = 60.0) -> int:
        """Ctrl-C, as the person would; killed if it does not stop in time."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), timeout_s)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode

    def explain(self) -> str:
        logs = "\n".join(
            f"--- {log.name}:\n{log.read_text(errors='replace')[-1500:]}"
            for log in sorted((self.work_dir / "logs").glob("*.log"))
        )
        return "demo output:\n" + "\n".join(self.output[-40:]) + "\n" + logs


async def _drop(settings: Settings, namespace: str, schema: str) -> None:
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    await delete_namespace(settings.kafka_bootstrap, namespace)


@asynccontextmanager
async def launched_demo(
    settings: Settings,
    work_dir: Path,
    env: dict[str, str],
    extra_args: Sequence[str] = (),
    schema_prefix: str = "test_demo",
) -> AsyncIterator[RunningDemo]:
    """`python -m demo run` in a topic namespace, schema, ports and work dir of its own, once it serves the
    playground; stopped, and its schema and topics dropped, afterwards."""
    namespace, schema = f"t{uuid.uuid4().hex[:8]}.", f"{schema_prefix}_{uuid.uuid4().hex[:12]}"
    names = ("port", "emulator-port", "api-port", "interactions-port")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    argv = [sys.executable, "-m", "demo", "run", "--namespace", namespace, "--schema", schema]
    argv += ["--work-dir", str(work_dir), *extra_args]
    argv += [arg for name, port in ports.items() for arg in (f"--{name}", str(port))]
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    running = RunningDemo(
        process,
        f"http://127.0.0.1:{ports['port']}",
        f"http://127.0.0.1:{ports['emulator-port']}",
        f"http://127.0.0.1:{ports['api-port']}",
        namespace,
        schema,
        work_dir,
    )
    reader = asyncio.create_task(running.read_output())
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(line.startswith("[demo] playground: ") for line in running.output):
            if process.returncode is not None or time.monotonic() > deadline:
                pytest.fail(f"the demo did not start\n{running.explain()}")
            await asyncio.sleep(0.2)
        yield running
    finally:
        await running.stop()
        await reader
        await _drop(settings, namespace, schema)


@pytest.fixture(scope="module")
async def demo(stack_up: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningDemo]:
    work_dir = tmp_path_factory.mktemp("demo")
    # The sinks get an embedded ClickHouse engine of their own.
    env = {**os.environ, "CLICKHOUSE_URL": f"chdb://{work_dir / 'clickhouse'}"}
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "INFERENCE_ENDPOINTS"):
        env.pop(name, None)
    # The offline persona responder answers (the embedded model is tested in tests/e2e/test_e2e_local_model).
    env["DEEP_LOCAL_MODEL"] = "false"
    async with launched_demo(stack_up, work_dir, env) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    chromium = ensure_chromium()
    async with async_playwright() as playwright:
        # Chromium's sandbox needs an unprivileged user; the test may run as root.
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
async def page(demo: RunningDemo, browser: Browser) -> AsyncIterator[Page]:
    opened = await browser.new_page(viewport={"width": 1500, "height": 900})
    await opened.goto(demo.url)
    await expect(opened.locator("#agents li")).to_have_count(len(AGENTS))
    yield opened
    await opened.close()


async def say(page: Page, text: str) -> None:
    """Type in the composer and send, as the person would."""
    composer = page.locator("#input")
    await composer.fill(text)
    await page.locator("#suggestions").evaluate("box => box.hidden = true")
    await composer.press("Enter")
    await expect(composer).to_have_value("")
    await expect(page.locator("#compose-error")).to_be_hidden()


async def open_channel(page: Page, name: str) -> None:
    await page.locator(f"#text-channels li[data-channel='{name}']").click()
    await expect(page.locator("#channel-title")).to_have_text(f"# {name}")


async def reply_ids(page: Page, author: str) -> list[int]:
    """The ids of `author`'s replies to the person shown. The channel shows its latest messages only, so
    replies are told apart by id (snowflakes grow with time), never counted."""
    replies = page.locator(f".message[data-author='{author}'][data-reply-to='You']")
    ids: list[str] = await replies.evaluate_all("nodes => nodes.map((node) => node.dataset.id)")
    return [int(i) for i in ids if i.isdigit()]


async def last_reply(page: Page, author: str) -> int:
    """The id of `author`'s latest reply to the person shown (0: none)."""
    return max(await reply_ids(page, author), default=0)


async def next_reply(page: Page, author: str, after: int) -> tuple[int, str]:
    """The id and text of `author`'s first reply to the person newer than reply `after`."""
    deadline = time.monotonic() + ANSWER_MS / 1000
    while not (newer := [i for i in await reply_ids(page, author) if i > after]):
        assert time.monotonic() < deadline, f"{author} did not answer"
        await asyncio.sleep(0.25)
    return min(newer), await page.locator(f".message[data-id='{min(newer)}']").inner_text()


async def test_play_lofi_plays_it(page: Page) -> None:
    await open_channel(page, "music")
    await say(page, "/play lofi")
    answer = page.locator(".message[data-author='Music Bot']", has_text="Playing: lofi")
    await expect(answer).to_be_visible(timeout=ANSWER_MS)
    await expect(answer.locator(".command-line")).to_have_text("used /play lofi")


async def test_luna_answers_a_mention_in_her_style(page: Page) -> None:
    await open_channel(page, "general")
    before = await last_reply(page, "Luna")
    await say(page, "@Luna what are you playing tonight?")
    mine = page.locator(".message[data-author='You']", has_text="what are you playing tonight?").last
    await expect(mine.locator(".mention")).to_have_text("@Luna")
    _, text = await next_reply(page, "Luna", before)
    character = all_presets()["luna"].config.character
    assert character is not None
    # The persona responder speaks from her interests and catchphrases; styling adds her enders and emoji.
    assert any(word.lower() in text.lower() for word in [*character.interests, *character.catchphrases]), text
    # Her side of it: the processors' tables, read from their changelogs, show she has met you.
    await page.locator("#agents li[data-agent='Luna']").click()
    await expect(page.locator("#affinity-you")).to_be_visible(timeout=ANSWER_MS)
    await expect(page.locator("#panel-decisions li[data-reason='mentioned']").first).to_be_visible(
        timeout=ANSWER_MS
    )
    await page.locator("#panel-close").click()


# The same question in other words: the auto-mod removes a third copy of one message within a minute.
PLANET_QUESTIONS = (
    "which planet do I like best?",
    "what is my favourite planet again?",
    "do you remember the planet I love?",
    "so which planet was my favourite?",
)


async def test_lunas_panel_shows_what_she_recalled_for_her_last_reply(
    page: Page, demo: RunningDemo, stack_up: Settings
) -> None:
    await open_channel(page, "general")
    await say(page, "@Luna my favourite planet is Neptune")
    answered, _ = await next_reply(page, "Luna", await last_reply(page, "Luna"))
    # The offline responder answers at once, perhaps before the memory writer has written the fact down: the
    # person asks once it is stored. (Asking the same again and again instead, the third copy within a minute
    # was removed by the auto-mod's repeat rule, unanswered.)
    async with httpx.AsyncClient(base_url=demo.url) as playground:
        session = (await playground.get("/api/session")).json()
    luna = uuid.UUID(next(a["deployment_id"] for a in session["agents"] if a["name"] == "Luna"))
    client = connect(stack_up)
    await client.connect()
    try:
        memories = MemoryStore(client)

        async def stored() -> bool:
            return any("Neptune" in memory.record.text for memory in await memories.listed(luna))

        await wait_until(stored, "Luna's memory of the planet", ANSWER_MS / 1000, every_s=0.5)
    finally:
        await client.close()
    # Her latest reply may be to someone else in the room, so the person asks until the panel shows the
    # recall of a reply to the question, each time in other words (the repeat rule).
    recalled = page.locator("#panel-recalled")
    for asked, question in enumerate(PLANET_QUESTIONS, 1):
        await say(page, f"@Luna {question}")
        answered, _ = await next_reply(page, "Luna", answered)
        await page.locator("#agents li[data-agent='Luna']").click()
        try:
            await expect(recalled).to_contain_text("Neptune", timeout=5_000)
            return
        except AssertionError:
            if asked == len(PLANET_QUESTIONS):
                raise
        finally:
            await page.locator("#panel-close").click()


async def test_link_spam_is_removed_by_the_auto_mod(page: Page, demo: RunningDemo) -> None:
    await open_channel(page, "general")
    for n in range(3):
        await say(page, f"free nitro at https://spam.example/nitro{n}")
    entry = page.locator(".moderation-entry[data-rule='links']").first
    await expect(entry).to_be_visible(timeout=ANSWER_MS)
    await expect(entry).to_contain_text("Guardian")
    warning = page.locator(".message[data-author='Guardian'].mentions-you", has_text="link to spam.example")
    await expect(warning.first).to_be_visible(timeout=ANSWER_MS)
    spam = page.locator(".message[data-author='You']", has_text="spam.example")
    await expect(spam).to_have_count(0, timeout=ANSWER_MS)
    # Deleted in Discord, by the auto-mod's bot: what the emulator recorded.
    async with httpx.AsyncClient(base_url=demo.emulator_url) as emulator:
        world = (await emulator.get("/_control/world")).json()
        deletes = (await emulator.get("/_control/actions", params={"kind": "delete"})).json()["actions"]
    guardian = next(b["id"] for b in world["bots"] if b["username"] == "Guardian")
    you = next(u["id"] for u in world["users"] if u["username"] == "you")
    assert any(d["bot_id"] == guardian and d["payload"]["author_id"] == you for d in deletes)


async def test_an_edited_catchphrase_is_used_on_the_next_messages(page: Page, tmp_path: Path) -> None:
    await open_channel(page, "general")
    await page.locator("#agents li[data-agent='Luna']").click()
    await page.locator("#edit-catchphrases").fill(NEW_CATCHPHRASE)
    await page.locator("#save-config").click()
    await expect(page.locator("#config-status")).to_contain_text("Saved")
    await expect(page.locator("#catchphrases-shown")).to_have_text(NEW_CATCHPHRASE)
    # The persona responder adds a catchphrase to about half of its lines: ask until one carries it.
    for attempt in range(10):
        before = await last_reply(page, "Luna")
        await say(page, f"@Luna tell me something fun ({attempt})")
        if "deep dive time" in (await next_reply(page, "Luna", before))[1]:
            break
    else:
        pytest.fail("Luna never used her new catchphrase")
    await page.locator("#panel-close").click()
    await page.locator("#agents li[data-agent='Luna']").click()
    await page.wait_for_timeout(1500)
    await page.screenshot(path=tmp_path / "playground.png")
    if os.environ.get("DEMO_SCREENSHOT"):
        await page.screenshot(path=REPO_ROOT / os.environ["DEMO_SCREENSHOT"])


async def test_a_deployment_is_followed_read_only_without_the_emulator(
    demo: RunningDemo, browser: Browser, tmp_path: Path
) -> None:
    """The playground for real servers: given a deployment id, its configuration, decisions and state come
    from Kafka alone (the follower never talks to the emulator or the API)."""
    async with httpx.AsyncClient(base_url=demo.url) as playground:
        session = (await playground.get("/api/session")).json()
    luna = next(a for a in session["agents"] if a["name"] == "Luna")
    (port,) = free_ports(1)
    argv = [sys.executable, "-m", "demo", "playground", "--deployment", luna["deployment_id"]]
    argv += ["--namespace", demo.namespace, "--port", str(port)]
    follower = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        assert follower.stdout is not None
        line = await asyncio.wait_for(follower.stdout.readline(), 60)
        assert b"following Luna" in line, line
        await asyncio.wait_for(follower.stdout.readline(), 10)  # the address: it is serving
        page = await browser.new_page(viewport={"width": 1300, "height": 800})
        await page.goto(f"http://127.0.0.1:{port}")
        await expect(page.locator("#panel-name")).to_have_text("Luna")
        await expect(page.locator("#chat")).to_be_hidden()
        await expect(page.locator("#config-form")).to_be_hidden()
        # Her edited configuration, as the processors have it from agent.deployments.
        await expect(page.locator("#catchphrases-shown")).to_have_text(NEW_CATCHPHRASE)
        await expect(page.locator("#panel-decisions li[data-reason='mentioned']").first).to_be_visible(
            timeout=ANSWER_MS
        )
        await expect(page.locator("#panel-state")).to_contain_text("You (", timeout=ANSWER_MS)
        await page.screenshot(path=tmp_path / "follow.png")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as followed:
            refused = await followed.put(f"/api/agents/{luna['deployment_id']}/config", json=luna["config"])
        assert refused.status_code == 403
        await page.close()
    finally:
        follower.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(follower.wait(), 30) == 0


async def test_ctrl_c_stops_everything_it_started(demo: RunningDemo) -> None:
    async with httpx.AsyncClient(base_url=demo.url) as playground:
        processes = (await playground.get("/api/live")).json()["processes"]
    pids = [p["pid"] for p in processes]
    assert {p["name"] for p in processes} == {
        "emulator",
        "api",
        "processors",
        "inference",
        "sinks",
        "gateway",
        "memory",
        "interactions",
    }
    assert all(p["running"] and p["restarts"] == 0 for p in processes), processes
    assert await demo.stop() == 0, demo.explain()
    await wait_until(lambda: demo.output[-1] == "[demo] stopped", "the demo's last line of output")
    assert not [pid for pid in pids if alive(pid)]
