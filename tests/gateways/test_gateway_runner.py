"""One runner process against the emulator: events out to Kafka, actions in, each performed exactly once."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from api.db import create_pool
from api.store.shared import deployments_where
from emulator.discord import DiscordEmulator
from emulator.discord.errors import ApiError
from emulator.discord.intents import Intent
from models.actions import Action, Attachment, Embed, SendMessage, TypingIndicator
from models.agent import AgentConfig, AgentMode
from models.events import EventEnvelope
from models.tools import COMMANDS_BY_TOOL, REPORT_COMMAND, Tool
from processors.emit import Emitter, MessageOrigin, Say
from settings import Settings
from streams.catalog import DEAD_LETTERS, DISCORD_ACTIONS, DISCORD_EVENTS, OWNER_NOTIFICATIONS
from streams.codec import encode_key
from streams.sealing import open_envelope, open_payload, seal_payload
from tests.gateways.conftest import (
    RunnerProcess,
    World,
    eventually,
    produce_action,
    read_events,
    read_topic,
    seal_bot,
)
from tests.processors.factories import agent_with, deployed
from vault.user_keys import UserKeyStore

pytestmark = [pytest.mark.stack, pytest.mark.timeout(120)]


def bot_messages(emulator: DiscordEmulator, bot_id: str) -> list[str]:
    return [action.payload["content"] for action in emulator.actions(bot_id=bot_id, kind="message")]


def said_by(emulator: DiscordEmulator, bot_id: str) -> list[str]:
    """What the bot said, in messages and replies alike."""
    return [action.payload.get("content", "") for action in emulator.actions(bot_id=bot_id)]


@pytest.fixture(scope="module")
async def runner(runners: Callable[..., RunnerProcess]) -> RunnerProcess:
    return runners("solo", instance_id="solo")


@pytest.fixture(scope="module")
async def bot_id(
    emulator: DiscordEmulator, world: World, schema_dsn: str, key_spec: str, runner: RunnerProcess
) -> str:
    bot = emulator.add_bot("gw-bot", guild_ids=[world.guild_id])
    await seal_bot(schema_dsn, key_spec, bot)
    connected = await eventually(
        lambda: emulator.stats(bot.id)["connected_sessions"] or not runner.alive, within_s=60
    )
    assert connected is not True and connected, runner.log()
    return bot.id


async def test_a_user_message_reaches_discord_events_keyed_by_guild_its_words_sealed(
    stack_up: Settings,
    namespace: str,
    emulator: DiscordEmulator,
    world: World,
    bot_id: str,
    data_keys: UserKeyStore,
) -> None:
    text = f"hello {uuid.uuid4().hex}"
    posted = emulator.post_user_message(world.user_id, text, world.channel_id)
    message_id = f'"{posted["id"]}"'.encode()

    def found(records: list) -> bool:
        return any(message_id in record.value for record in records)

    records = await read_topic(
        stack_up.kafka_bootstrap, DISCORD_EVENTS.name_in(namespace), until=found, within_s=20
    )
    matching = [record for record in records if message_id in record.value]
    assert len(matching) == 1
    record = matching[0]
    # The words and the author are not in the topic's bytes; their data key opens them.
    assert text.encode() not in record.value and world.user_id.encode() not in record.value
    envelope = await open_envelope(DISCORD_EVENTS.codec.decode(record.value), data_keys)
    assert envelope is not None
    assert (envelope.data["content"], envelope.data["author"]["id"]) == (text, world.user_id)
    assert record.key == world.guild_id.encode()
    assert envelope.key == world.guild_id
    assert (envelope.bot_id, envelope.type, envelope.guild_id, envelope.channel_id) == (
        bot_id,
        "MESSAGE_CREATE",
        world.guild_id,
        world.channel_id,
    )
    assert envelope.data["id"] == posted["id"]
    assert envelope.event_id.startswith(f"{bot_id}:") and envelope.event_id.endswith(f":{envelope.sequence}")


async def test_a_guild_create_over_a_mebibyte_reaches_discord_events_whole(
    stack_up: Settings,
    namespace: str,
    emulator: DiscordEmulator,
    schema_dsn: str,
    key_spec: str,
    runner: RunnerProcess,
    data_keys: UserKeyStore,
) -> None:
    """A large community's GUILD_CREATE comes as one payload of a megabyte or more (channels, threads, roles,
    emoji). Over the broker's default 1 MiB a record, Kafka refused it, and the shard resumed for it again and
    again: the bot heard nothing more."""
    guild = emulator.add_guild("big-guild")
    channels = [emulator.add_channel(guild.id, f"c{n}", topic="t" * 1000) for n in range(1200)]
    user = emulator.add_user("bob")
    emulator.add_member(guild.id, user.id)
    bot = emulator.add_bot("big-bot", guild_ids=[guild.id])
    await seal_bot(schema_dsn, key_spec, bot)
    connected = await eventually(
        lambda: emulator.stats(bot.id)["connected_sessions"] or not runner.alive, within_s=60
    )
    assert connected is not True and connected, runner.log()
    text = f"after the big one {uuid.uuid4().hex}"
    posted = emulator.post_user_message(user.id, text, channels[0].id)
    said = f'"{posted["id"]}"'.encode()
    topic = DISCORD_EVENTS.name_in(namespace)

    def guild_create_and_message(records: list) -> bool:
        ours = [r for r in records if r.key == guild.id.encode()]
        return any(b'"GUILD_CREATE"' in r.value for r in ours) and any(said in r.value for r in ours)

    records = await read_topic(stack_up.kafka_bootstrap, topic, until=guild_create_and_message, within_s=30)
    assert guild_create_and_message(records), runner.log()
    (created,) = [r for r in records if r.key == guild.id.encode() and b'"GUILD_CREATE"' in r.value]
    assert len(created.value) > 1024 * 1024
    envelope = await open_envelope(DISCORD_EVENTS.codec.decode(created.value), data_keys)
    assert envelope is not None and len(envelope.data["channels"]) == len(channels)


async def test_an_action_produced_twice_is_performed_once(
    namespace: str, emulator: DiscordEmulator, world: World, producer: AIOKafkaProducer, bot_id: str
) -> None:
    action = SendMessage(
        action_id=f"twice-{uuid.uuid4().hex}",
        bot_id=bot_id,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        content=f"once {uuid.uuid4().hex}",
    )
    await produce_action(producer, namespace, action)
    await produce_action(producer, namespace, action)
    marker = SendMessage(
        action_id=f"marker-{uuid.uuid4().hex}",
        bot_id=bot_id,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        content=f"marker {uuid.uuid4().hex}",
    )
    # Typing has no nonce for Discord to deduplicate: only the ledger keeps a redelivery from repeating it.
    typing = TypingIndicator(
        action_id=f"typing-{uuid.uuid4().hex}",
        bot_id=bot_id,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
    )
    await produce_action(producer, namespace, typing)
    await produce_action(producer, namespace, typing)
    await produce_action(producer, namespace, marker)
    # Actions of one bot are performed in order: once the marker is there, every copy was handled.
    assert await eventually(lambda: marker.content in bot_messages(emulator, bot_id), within_s=30)
    assert bot_messages(emulator, bot_id).count(action.content) == 1
    assert len(emulator.actions(bot_id=bot_id, kind="typing")) == 1


async def test_a_malformed_action_is_dead_lettered_and_the_stream_goes_on(
    stack_up: Settings,
    namespace: str,
    emulator: DiscordEmulator,
    world: World,
    producer: AIOKafkaProducer,
    bot_id: str,
) -> None:
    await producer.send_and_wait(DISCORD_ACTIONS.name_in(namespace), b"{not json", key=encode_key(bot_id))
    wrong = orjson.dumps({"schema_version": 1, "kind": "send_message", "action_id": "x", "bot_id": bot_id})
    await producer.send_and_wait(DISCORD_ACTIONS.name_in(namespace), wrong, key=encode_key(bot_id))
    after = SendMessage(
        action_id=f"after-garbage-{uuid.uuid4().hex}",
        bot_id=bot_id,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        content=f"after garbage {uuid.uuid4().hex}",
    )
    await produce_action(producer, namespace, after)
    assert await eventually(lambda: after.content in bot_messages(emulator, bot_id), within_s=30)
    dead = DEAD_LETTERS[DISCORD_ACTIONS.name]
    letters = await read_topic(
        stack_up.kafka_bootstrap,
        dead.name_in(namespace),
        until=lambda records: len(records) >= 2,
        within_s=20,
    )
    decoded = [dead.codec.decode(record.value) for record in letters]
    assert [(letter.key, letter.value) for letter in decoded] == [
        (bot_id, "{not json"),
        (bot_id, wrong.decode()),
    ]
    assert decoded[0].error.startswith("not JSON")
    assert "channel_id" in decoded[1].error  # the error names the missing field


async def test_a_runner_killed_mid_stream_performs_every_action_once_after_restart(
    namespace: str,
    emulator: DiscordEmulator,
    world: World,
    producer: AIOKafkaProducer,
    bot_id: str,
    runner: RunnerProcess,
    runners: Callable[..., RunnerProcess],
) -> None:
    # One message per second through the route bucket keeps the stream flowing while the runner dies.
    emulator.configure(route_limits={"POST /channels/{channel_id}/messages": (2, 1.0)})
    run = uuid.uuid4().hex[:8]
    contents = [f"stream {run} #{n}" for n in range(12)]
    for n, content in enumerate(contents):
        await produce_action(
            producer,
            namespace,
            SendMessage(
                action_id=f"stream-{run}-{n}",
                bot_id=bot_id,
                guild_id=world.guild_id,
                channel_id=world.channel_id,
                content=content,
            ),
        )
    assert await eventually(
        lambda: sum(c in contents for c in bot_messages(emulator, bot_id)) >= 3, within_s=30
    )
    runner.kill()
    performed_before_restart = sum(c in contents for c in bot_messages(emulator, bot_id))
    assert performed_before_restart < len(contents), "the kill came too late to test anything"
    # Restarted under the same instance id: a static member takes its partitions straight back.
    restarted_at = time.time()
    restarted = runners("solo-restarted", instance_id=runner.instance_id)
    done = await eventually(lambda: set(contents) <= set(bot_messages(emulator, bot_id)), within_s=60)
    resumed = [a.at for a in emulator.actions(bot_id=bot_id, kind="message") if a.at > restarted_at]
    # The figure is reported, not asserted (it includes the process's start and the bot's RESUME).
    print(f"runner restarted under its instance id performed again after {min(resumed) - restarted_at:.1f} s")
    emulator.configure(route_limits={})
    assert done, restarted.log()
    counts = Counter(c for c in bot_messages(emulator, bot_id) if c in contents)
    assert counts == Counter(contents)


async def test_a_429_is_waited_out_and_retried(
    namespace: str, emulator: DiscordEmulator, world: World, producer: AIOKafkaProducer, bot_id: str
) -> None:
    # Two requests per second for this token, while the runner is allowed fifty: Discord's global 429s.
    emulator.update_bot(bot_id, rest_global_limit=2)
    before = emulator.stats(bot_id)["rest_429"]
    run = uuid.uuid4().hex[:8]
    contents = [f"limited {run} #{n}" for n in range(6)]
    for n, content in enumerate(contents):
        await produce_action(
            producer,
            namespace,
            SendMessage(
                action_id=f"limited-{run}-{n}",
                bot_id=bot_id,
                guild_id=world.guild_id,
                channel_id=world.channel_id,
                content=content,
            ),
        )
    done = await eventually(lambda: set(contents) <= set(bot_messages(emulator, bot_id)), within_s=40)
    emulator.update_bot(bot_id, rest_global_limit=None)
    assert done
    assert emulator.stats(bot_id)["rest_429"] > before
    assert Counter(c for c in bot_messages(emulator, bot_id) if c in contents) == Counter(contents)
    # Performed in the order they were produced.
    assert [c for c in bot_messages(emulator, bot_id) if c in contents] == contents


async def test_a_reply_follows_its_typing_pause_with_the_indicator_kept_alive(
    namespace: str, emulator: DiscordEmulator, world: World, producer: AIOKafkaProducer, bot_id: str
) -> None:
    since = emulator.actions()[-1].seq if emulator.actions() else 0
    # Longer than Discord shows one typing trigger (10 s): the edge triggers it again before it fades.
    typing = TypingIndicator(
        action_id=f"pause-{uuid.uuid4().hex}",
        bot_id=bot_id,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        delay_ms=9_000,
    )
    reply = SendMessage(
        action_id=f"after-pause-{uuid.uuid4().hex}",
        bot_id=bot_id,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        content=f"typed {uuid.uuid4().hex}",
    )
    await produce_action(producer, namespace, typing)
    await produce_action(producer, namespace, reply)
    assert await eventually(lambda: reply.content in bot_messages(emulator, bot_id), within_s=60)
    recorded = [
        a
        for a in emulator.actions(since=since, bot_id=bot_id)
        if a.kind == "typing" or (a.kind == "message" and a.payload["content"] == reply.content)
    ]
    assert [a.kind for a in recorded] == ["typing", "typing", "message"]
    # The message waited out the whole pause after the first trigger.
    assert recorded[2].at - recorded[0].at >= typing.delay_ms / 1000


async def configure_agent(dsn: str, bot_id: str, *tools: Tool) -> set[str]:
    """The bot's deployed agent now enables `tools` and all their commands; returns those commands and the
    report every agent answers."""
    commands = [command for tool in tools for command in COMMANDS_BY_TOOL[tool]]
    config = AgentConfig(
        name="Bot", mode=AgentMode.utility, enabled_tools=list(tools), enabled_commands=commands
    )
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE agent_configurations SET config = $1::jsonb WHERE config_id IN (SELECT d.config_id FROM"
            " agent_deployments d JOIN bot_tokens t ON t.token_id = d.token_id WHERE t.bot_user_id = $2)",
            config.model_dump_json(),
            bot_id,
        )
    finally:
        await conn.close()
    return {*commands, REPORT_COMMAND}


async def test_a_deployment_registers_exactly_its_commands_and_disabling_music_removes_play(
    emulator: DiscordEmulator, world: World, schema_dsn: str, bot_id: str
) -> None:
    def registered() -> set[str]:
        return {command["name"] for command in emulator.registered_commands(bot_id, world.guild_id)}

    wanted = await configure_agent(schema_dsn, bot_id, Tool.music, Tool.moderation)
    assert await eventually(lambda: registered() == wanted, within_s=30)
    emulator.invoke_command(bot_id, world.user_id, world.channel_id, "play")

    wanted = await configure_agent(schema_dsn, bot_id, Tool.moderation)
    assert await eventually(lambda: registered() == wanted, within_s=30)
    since = emulator.world.actions.last_seq
    with pytest.raises(ApiError) as unknown:  # an unregistered command gets no interaction
        emulator.invoke_command(bot_id, world.user_id, world.channel_id, "play")
    assert unknown.value.code == 10063
    assert emulator.actions(since=since, bot_id=bot_id) == []


async def test_a_message_with_a_file_is_uploaded_with_it(
    namespace: str, emulator: DiscordEmulator, world: World, producer: AIOKafkaProducer, bot_id: str
) -> None:
    chart = Attachment(filename="stats.png", content_type="image/png", data=b"\x89PNG\r\n\x1a\n" + bytes(64))
    action = SendMessage(
        action_id=f"file-{uuid.uuid4().hex}",
        bot_id=bot_id,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        embed=Embed(title="Server activity", image_url="attachment://stats.png"),
        attachment=chart,
    )
    await produce_action(producer, namespace, action)

    def posted() -> dict[str, Any] | None:
        return next((m for m in emulator.history(world.channel_id) if m["attachments"]), None)

    message = await eventually(posted, within_s=30)
    assert message, "the message with its file was not posted"
    [attachment] = message["attachments"]
    assert (attachment["filename"], attachment["size"]) == ("stats.png", len(chart.data))
    assert message["embeds"][0]["image"]["url"] == "attachment://stats.png"
    stored = emulator.attachment(attachment["id"])
    assert stored == ("image/png", chart.data)


async def test_a_bot_that_loses_message_content_keeps_working_and_its_owner_is_told_what_needs_it(
    stack_up: Settings,
    namespace: str,
    emulator: DiscordEmulator,
    world: World,
    schema_dsn: str,
    key_spec: str,
    data_keys: UserKeyStore,
    runner: RunnerProcess,
) -> None:
    emulated = emulator.add_bot("no-content", guild_ids=[world.guild_id])
    token_id = await seal_bot(schema_dsn, key_spec, emulated)
    await configure_agent(schema_dsn, emulated.id, Tool.moderation)
    pool = await create_pool(schema_dsn)
    try:

        async def message_content() -> bool | None:
            found: bool | None = await pool.fetchval(
                "SELECT message_content FROM bot_tokens WHERE token_id = $1", token_id
            )
            return found

        assert await eventually(lambda: _is(message_content(), True), within_s=60), runner.log()

        # The owner switches the intent off in the developer portal; the session ends, and the next IDENTIFY
        # with MESSAGE_CONTENT is refused (4014): the runner identifies without it.
        emulator.update_bot(emulated.id, privileged_intents=int(Intent.GUILD_MEMBERS))
        await emulator.hub.close_bot(emulated, 4009, "Session timed out.")
        assert await eventually(lambda: _is(message_content(), False), within_s=60), runner.log()
        assert await eventually(lambda: emulator.stats(emulated.id)["connected_sessions"] == 1, within_s=30)
        assert emulator.stats(emulated.id)["close_codes"].get("4014") == 1

        [deployment] = await deployments_where(pool, "t.token_id = $1", token_id)
        assert deployment.message_content is False
        assert deployment.needs_message_content == ["prefix commands (!)"]
        notifications = [
            OWNER_NOTIFICATIONS.codec.decode(row["value"])
            for row in await pool.fetch(
                "SELECT value FROM outbox WHERE topic = $1", OWNER_NOTIFICATIONS.name_in(namespace)
            )
        ]
        [notice] = [n for n in notifications if n.token_id == token_id]
        assert notice.kind == "message_content_missing" and "prefix commands (!)" in notice.message
    finally:
        await pool.close()

    # Discord still delivers the content of a message that mentions the bot, and blanks the others.
    run = uuid.uuid4().hex[:8]
    plain = emulator.post_user_message(world.user_id, f"plain {run}", world.channel_id)
    mention = emulator.post_user_message(world.user_id, f"<@{emulated.id}> hi {run}", world.channel_id)

    def contents(events: list[EventEnvelope]) -> dict[str, str]:
        return {
            e.data["id"]: e.data["content"]
            for e in events
            if e.bot_id == emulated.id and e.type == "MESSAGE_CREATE"
        }

    events = await read_events(
        stack_up.kafka_bootstrap,
        namespace,
        data_keys,
        until=lambda events: {plain["id"], mention["id"]} <= contents(events).keys(),
        within_s=20,
    )
    seen = contents(events)
    assert (seen[plain["id"]], seen[mention["id"]]) == ("", mention["content"])


async def _is(value: Awaitable[bool | None], expected: bool) -> bool:
    return await value is expected


async def test_sealed_replies_are_opened_and_said_and_those_about_an_erased_member_are_not(
    stack_up: Settings,
    namespace: str,
    emulator: DiscordEmulator,
    world: World,
    producer: AIOKafkaProducer,
    bot_id: str,
    data_keys: UserKeyStore,
) -> None:
    member, erased = (f"7{uuid.uuid4().int % 10**17:017d}" for _ in range(2))
    agent = deployed(agent_with(AgentMode.bare), guild_id=world.guild_id, bot_id=bot_id)

    def answering(user: str, content: str) -> SendMessage:
        return SendMessage(
            action_id=f"sealed-{uuid.uuid4().hex}",
            bot_id=bot_id,
            guild_id=world.guild_id,
            channel_id=world.channel_id,
            content=content,
            about_user_id=user,
        )

    def command_answer(invoker: str, text: str) -> Action:
        """A prefix command's answer, as the processors make it for the command's event."""
        emit = Emitter(f"evt-{uuid.uuid4().hex}", agent, world.guild_id, invoker)
        command = f"7{uuid.uuid4().int % 10**17:017d}"
        return emit.answer(Say(text), MessageOrigin(world.channel_id, command))

    said, unsaid = f"just for you {uuid.uuid4().hex}", f"about the erased {uuid.uuid4().hex}"
    answered, unanswered = f"Queued for you {uuid.uuid4().hex}", f"Queued for the erased {uuid.uuid4().hex}"
    actions = [
        answering(erased, unsaid),
        command_answer(erased, unanswered),
        answering(member, said),
        command_answer(member, answered),
    ]
    assert [action.about_user_id for action in actions] == [erased, erased, member, member]
    sealed = [await seal_payload(action, DISCORD_ACTIONS.sealing, data_keys) for action in actions]
    await data_keys.destroy_user_keys(erased)
    for action in sealed:
        await produce_action(producer, namespace, action)
    # Actions of one bot are performed in order: once the last is said, the others were handled.
    assert await eventually(lambda: answered in said_by(emulator, bot_id), within_s=30)
    assert said in said_by(emulator, bot_id)
    assert not {unsaid, unanswered} & set(said_by(emulator, bot_id))

    ids = [action.action_id.encode() for action in actions]
    records = await read_topic(
        stack_up.kafka_bootstrap,
        DISCORD_ACTIONS.name_in(namespace),
        until=lambda rs: all(any(i in r.value for r in rs) for i in ids),
        within_s=20,
    )
    stored = [record.value for record in records if any(i in record.value for i in ids)]
    assert len(stored) == 4
    for personal in (said, unsaid, answered, unanswered, member, erased):
        assert not [value for value in stored if personal.encode() in value]
    await data_keys.destroy_user_keys(member)
    opened = [
        await open_payload(DISCORD_ACTIONS.codec.decode(v), DISCORD_ACTIONS.sealing, data_keys)
        for v in stored
    ]
    assert opened == [None] * 4
