"""A trivia night end to end on a clock the test moves: a processors worker on the broker, the Discord
emulator, and between them what a gateway does (its dispatches become envelopes on discord.events; the
worker's actions are performed as gateways/actions.py plans them, reports included).

The event is created in the emulator when the clock reaches its announcement, the interested user is
reminded, the worker is killed and restarted (nothing is done twice), the event starts, two questions are
asked, one user answers wrong and one right, a redelivered answer scores nothing, a question times out, the
leaderboard is announced and the event is completed."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from emulator.discord import DiscordEmulator, EmulatorConfig, Intent
from gateways.actions import RestCall, plan, report_calls, report_text
from gateways.dispatch import envelope as dispatch_envelope
from gateways.dispatch import event_id as dispatch_event_id
from models.actions import Action, ReportedAction
from models.agent import AgentConfig, AgentMode
from models.events import EventEnvelope
from settings import Settings
from streams.catalog import DEAD_LETTERS, DISCORD_ACTIONS, DISCORD_EVENTS
from streams.codec import encode_key
from tests.clock_file import set_clock
from tests.emulator.emulator_helpers import RawGateway
from tests.processors.conftest import Collector, Producer, Worker, clocked_worker
from tests.processors.factories import agent_with, deployed, routing
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

WAIT_S = 60.0
INTENTS = int(
    Intent.GUILDS
    | Intent.GUILD_MEMBERS
    | Intent.GUILD_MESSAGES
    | Intent.MESSAGE_CONTENT
    | Intent.GUILD_SCHEDULED_EVENTS
)
# Starts in the emulator's future (Discord refuses a start in the past), whole minutes in UTC.
START = (datetime.now(UTC) + timedelta(hours=3)).replace(second=0, microsecond=0)
QUESTIONS: list[dict[str, Any]] = [
    {"question": "Capital of Japan?", "answers": ["Tokyo"]},
    {"question": "Largest planet?", "answers": ["Jupiter"]},
]


@pytest.fixture(scope="module")
def state_dir() -> Iterator[Path]:
    """The clock file and the worker's log, outside pytest's temporary directories: another session's
    pytest on this machine may clean those up while the worker still reads its clock."""
    with tempfile.TemporaryDirectory(prefix="events-worker-") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def clock(state_dir: Path) -> Path:
    path = state_dir / "now"
    set_clock(path, START - timedelta(days=2))
    return path


@pytest.fixture(scope="module")
async def worker(namespace: str, clock: Path, state_dir: Path) -> AsyncIterator[Worker]:
    worker = clocked_worker(namespace, clock, state_dir)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
async def emu() -> AsyncIterator[DiscordEmulator]:
    # Route limits high enough that the test's bridge, which does not retry after a 429 as a gateway does,
    # is never refused for its pace.
    config = EmulatorConfig(heartbeat_interval_ms=1000, identify_interval_s=0.0, route_limit=1000)
    emulator = DiscordEmulator(config)
    await emulator.start()
    yield emulator
    await emulator.stop()


def host() -> AgentConfig:
    trivia = {
        "kind": "trivia",
        "title": "Trivia night",
        "on_date": START.date().isoformat(),
        "time": START.strftime("%H:%M"),
        "duration_minutes": 60,
        "remind_minutes": 30,
        "channel": "#general",
        "voice_channel": "#lounge",
        "trivia": {"source": "owner", "questions": QUESTIONS, "question_count": 2, "answer_timeout_s": 30},
    }
    return agent_with(AgentMode.bare, behavior={"hosted_events": {"trivia": trivia}})


class Bridge:
    """What the gateway does for one bot: dispatches to discord.events, heartbeats that keep the connection,
    actions performed on Discord."""

    def __init__(
        self,
        emu: DiscordEmulator,
        http: aiohttp.ClientSession,
        produce: Producer,
        collector: Collector,
        admin: AIOKafkaAdminClient,
    ) -> None:
        self.emu, self.http, self.produce, self.collector = emu, http, produce, collector
        # The worker's consumer group (its app id in the namespace).
        self.admin, self.group = admin, f"{produce.namespace}deep-processors"
        self.envelopes: list[EventEnvelope] = []
        self.performed: set[str] = set()
        self.refusals: list[str] = []
        # The last dispatch's sequence number, which each heartbeat carries.
        self.sequence: int | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, token: str, bot_id: str) -> None:
        gateway = RawGateway(self.http, self.emu.gateway_url)
        hello = await gateway.connect()
        await gateway.identify(token, INTENTS)
        self.token = token
        self._tasks = [
            asyncio.create_task(self._dispatches(gateway, bot_id)),
            asyncio.create_task(self._heartbeats(gateway, hello["d"]["heartbeat_interval"] / 1000)),
            asyncio.create_task(self._actions()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _heartbeats(self, gateway: RawGateway, interval_s: float) -> None:
        """As a gateway does: Discord closes a connection that sends nothing for 1.5 heartbeat intervals
        (4009, "Session timed out"), and every dispatch after it would be lost."""
        while True:
            await asyncio.sleep(interval_s)
            await gateway.send(1, self.sequence)

    async def _dispatches(self, gateway: RawGateway, bot_id: str) -> None:
        while True:
            frame = await gateway.recv(wait_s=3600)
            if frame is None:
                close_code = gateway.ws.close_code if gateway.ws is not None else None
                self.refusals.append(f"the gateway closed the connection ({close_code}): no dispatch since")
                return
            if frame.get("op") != 0:
                continue
            self.sequence = frame["s"]
            if frame.get("t") in ("READY", "RESUMED"):
                continue
            event = dispatch_envelope(
                dispatch_event_id(bot_id, "g1", frame["s"]),
                bot_id,
                0,
                frame["s"],
                frame["t"],
                frame["d"],
                datetime.now(UTC),
            )
            self.envelopes.append(event)
            await self.publish(event)

    async def publish(self, event: EventEnvelope) -> None:
        topic = DISCORD_EVENTS.name_in(self.produce.namespace)
        value = DISCORD_EVENTS.codec.encode(event)
        sent = await self.produce.producer.send_and_wait(topic, value, key=encode_key(event.key))
        self.last_sent = TopicPartition(topic, sent.partition), sent.offset

    async def worker_caught_up(self) -> None:
        """Once the worker committed past every dispatch published so far (it has processed them)."""
        partition, offset = self.last_sent

        async def committed() -> bool:
            offsets = await self.admin.list_consumer_group_offsets(self.group, partitions=[partition])
            return partition in offsets and offsets[partition].offset > offset

        await wait_until(committed, f"the worker past {partition}@{offset}", timeout_s=WAIT_S)

    async def _call(self, call: RestCall) -> None:
        headers = {"Authorization": f"Bot {self.token}"}
        url = self.emu.api_url + call.path.format(**call.params)
        async with self.http.request(call.method, url, json=call.body, headers=headers) as response:
            if response.status >= 400:
                self.refusals.append(f"{call.method} {url}: {await response.text()}")
                raise RuntimeError(self.refusals[-1])

    async def _perform(self, action: Action) -> None:
        planned = plan(action, datetime.now(UTC))
        assert isinstance(planned, RestCall)
        refusal = None
        try:
            await self._call(planned)
        except RuntimeError as error:
            refusal = str(error)
        if isinstance(action, ReportedAction) and action.report is not None:
            text = report_text(action.report, refusal)
            for call in report_calls(action, action.report, text):
                assert isinstance(call, RestCall)
                await self._call(call)

    async def _actions(self) -> None:
        while True:
            for action in self.collector.of(DISCORD_ACTIONS):
                if action.action_id not in self.performed:
                    self.performed.add(action.action_id)
                    try:
                        await self._perform(action)
                    except Exception as error:  # the test reports it; the bridge goes on
                        self.refusals.append(f"{action.kind}: {error!r}")
            await asyncio.sleep(0.05)


async def said(bridge: Bridge, channel_id: str, match: Callable[[str], bool], count: int = 1) -> list[str]:
    """The bot's messages in the channel that match, once there are `count` of them."""
    emu = bridge.emu

    def found() -> list[str]:
        texts = [m["content"] for m in emu.history(channel_id, 100)]
        return [text for text in texts if match(text)]

    try:
        await wait_until(lambda: len(found()) >= count, f"{count} matching message(s)", timeout_s=WAIT_S)
    except AssertionError as error:
        texts = [m["content"] for m in emu.history(channel_id, 100)]
        produced = [getattr(a, "content", a.kind) for a in bridge.collector.of(DISCORD_ACTIONS)]
        dead = [letter.error for letter in bridge.collector.of(DEAD_LETTERS[DISCORD_EVENTS.name])]
        raise AssertionError(
            f"{error}; the channel has: {texts}; the worker produced: {produced}; refused: {bridge.refusals};"
            f" dead letters: {dead}"
        ) from None
    return found()


async def test_a_trivia_night_hosted_end_to_end(
    stack_up: Settings,
    worker: Worker,
    emu: DiscordEmulator,
    produce: Producer,
    collector: Collector,
    clock: Path,
) -> None:
    guild = emu.add_guild("Anime Hangout")
    general = emu.add_channel(guild.id, "general")
    lounge = emu.add_channel(guild.id, "lounge", type=2)
    kai, mia = emu.add_user("kai"), emu.add_user("mia")
    for person in (kai, mia):
        emu.add_member(guild.id, person.id)
    bot = emu.add_bot(
        "host", guild_ids=[guild.id], privileged_intents=int(Intent.GUILD_MEMBERS | Intent.MESSAGE_CONTENT)
    )
    await produce.routing(
        routing(
            guild.id,
            deployed(host(), guild_id=guild.id, bot_id=bot.id, deployed_at=START - timedelta(days=3)),
        )
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=stack_up.kafka_bootstrap)
    await admin.start()
    async with aiohttp.ClientSession() as http:
        bridge = Bridge(emu, http, produce, collector, admin)
        await bridge.start(bot.token, bot.id)
        try:
            await host_the_night(emu, bridge, worker, clock, guild.id, general.id, lounge.id, kai.id, mia.id)
        finally:
            await bridge.stop()
            await admin.close()


async def host_the_night(
    emu: DiscordEmulator,
    bridge: Bridge,
    worker: Worker,
    clock: Path,
    guild_id: str,
    general: str,
    lounge: str,
    kai: str,
    mia: str,
) -> None:
    guild = emu.world.guild(guild_id)
    # Nothing before the announcement (a day before); created when the clock reaches it.
    set_clock(clock, START - timedelta(hours=2))
    await wait_until(lambda: bool(guild.scheduled_events), "the event created", timeout_s=WAIT_S)
    [event] = guild.scheduled_events.values()
    assert (event.name, event.channel_id, event.status) == ("Trivia night", lounge, 1)
    assert event.scheduled_start_time == START and event.scheduled_end_time == START + timedelta(hours=1)
    await said(bridge, general, lambda text: "Trivia night" in text and "interested" in text)

    emu.scheduled_events.set_interest(guild_id, event.id, kai, True)
    await wait_until(
        lambda: bridge.envelopes[-1].type == "GUILD_SCHEDULED_EVENT_USER_ADD", "the interest sent"
    )
    await bridge.worker_caught_up()
    set_clock(clock, START - timedelta(minutes=30))
    [reminder] = await said(bridge, general, lambda text: "starts in 30 minutes" in text)
    assert f"<@{kai}>" in reminder and f"<@{mia}>" not in reminder

    # Killed and restarted: the steps done are recovered from the table's changelog, none is done again.
    worker.kill()
    worker.start()
    set_clock(clock, START)
    await wait_until(lambda: guild.scheduled_events[event.id].status == 2, "active", timeout_s=WAIT_S)
    [first] = await said(bridge, general, lambda text: "Question 1/2" in text)
    answers = {q["question"]: q["answers"][0] for q in QUESTIONS}
    answer = next(a for q, a in answers.items() if q in first)
    other = next(a for a in answers.values() if a != answer)

    emu.post_user_message(mia, other, channel_id=general)
    emu.post_user_message(kai, f"{answer.lower()}!", channel_id=general)
    [congrats] = await said(bridge, general, lambda text: "got it" in text)
    assert f"<@{kai}>" in congrats and answer in congrats
    # Kai's answer delivered again: nothing more is said or scored.
    [right] = [e for e in bridge.envelopes if e.type == "MESSAGE_CREATE" and e.data["author"]["id"] == kai]
    await bridge.publish(right)

    set_clock(clock, START + timedelta(seconds=5))
    await said(bridge, general, lambda text: "Question 2/2" in text)
    set_clock(clock, START + timedelta(seconds=40))
    await said(bridge, general, lambda text: "Time's up" in text)
    await wait_until(lambda: guild.scheduled_events[event.id].status == 3, "completed", timeout_s=WAIT_S)
    [board] = await said(bridge, general, lambda text: "Final scores" in text)
    assert board.endswith(f"1. <@{kai}> · 1 point")
    assert len(await said(bridge, general, lambda text: "got it" in text)) == 1
    assert len(guild.scheduled_events) == 1
    assert len(await said(bridge, general, lambda text: "starts in 30 minutes" in text)) == 1
    assert len(await said(bridge, general, lambda text: "Mark yourself interested" in text)) == 1
    assert not bridge.refusals
