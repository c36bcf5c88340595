"""The shard layer in process against the emulator, with the real Kafka and Redis: forwarding, RESUME after a
lost connection or a restart, close code 4004, the identify limiter, the action ledger and the performer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from emulator.discord import DiscordEmulator
from gateways import fleet as fleet_module
from gateways import protocol
from gateways.deferrals import Deferrals
from gateways.fleet import Fleet
from gateways.identify import IdentifyLimiter
from gateways.ledger import ActionLedger, Claim
from gateways.media import media_session
from gateways.perform import ActionPerformer, Status
from gateways.rest import RestClients, use_api_base
from gateways.sessions import SessionStore
from gateways.shard import BotCredentials, ShardState
from gateways.voice.manager import VoiceManager
from models.actions import (
    AnswerInChannel,
    AnswerInteraction,
    Ban,
    InteractionResponse,
    MemberPersonaUpdate,
    PresenceUpdate,
    Report,
    SendMessage,
    Unban,
    VoiceJoin,
)
from models.commands import builtin_command
from models.events import EventEnvelope
from settings import Settings
from streams.catalog import DISCORD_EVENTS
from tests.data_keys import MemoryDataKeys
from tests.gateways.conftest import World, eventually, read_events, voice_manager
from tests.waiting import wait_until
from vault.store import HealthReason

pytestmark = [pytest.mark.stack, pytest.mark.timeout(60)]

INTERACTION_DEFER_S = 1.5


@dataclass
class Deaths:
    seen: list[tuple[str, HealthReason]] = field(default_factory=list)

    async def __call__(self, bot: BotCredentials, reason: HealthReason) -> None:
        self.seen.append((bot.bot_id, reason))


@pytest.fixture(scope="module")
async def api_base(emulator: DiscordEmulator) -> AsyncIterator[None]:
    previous = discord.http.Route.BASE
    use_api_base(emulator.api_url)
    yield
    discord.http.Route.BASE = previous


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    yield session
    await session.close()


@dataclass
class Rig:
    fleet: Fleet
    deaths: Deaths
    rest: RestClients
    namespace: str
    deferrals: Deferrals
    voice: VoiceManager
    keys: MemoryDataKeys


@pytest.fixture(scope="module")
def keys() -> MemoryDataKeys:
    """One module's data keys: its fleets share the namespace's topic, so they seal with the same keys."""
    return MemoryDataKeys()


@pytest.fixture
async def rig(
    api_base: None,
    emulator: DiscordEmulator,
    namespace: str,
    producer: AIOKafkaProducer,
    redis_client: aioredis.Redis,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    keys: MemoryDataKeys,
) -> AsyncIterator[Rig]:
    deaths = Deaths()
    rest = RestClients(http)
    deferrals = Deferrals(rest, INTERACTION_DEFER_S)
    fleet = make_fleet(emulator, namespace, producer, redis_client, http, rest, deaths, keys, deferrals)
    async with media_session(allow_private=True) as media:
        voice = voice_manager(
            fleet, http, media, producer, redis_client, namespace, emulator.gateway_url, tmp_path
        )
        running = asyncio.create_task(fleet.run())
        yield Rig(fleet, deaths, rest, namespace, deferrals, voice, keys)
        running.cancel()
        await voice.close()
        await fleet.close()


def make_fleet(
    emulator: DiscordEmulator,
    namespace: str,
    producer: AIOKafkaProducer,
    redis_client: aioredis.Redis,
    http: aiohttp.ClientSession,
    rest: RestClients,
    deaths: Deaths,
    keys: MemoryDataKeys,
    deferrals: Deferrals | None = None,
) -> Fleet:
    return Fleet(
        http=http,
        rest=rest,
        producer=producer,
        events_topic=DISCORD_EVENTS.name_in(namespace),
        sessions=SessionStore(redis_client, namespace),
        identify=IdentifyLimiter(redis_client, namespace),
        gateway_url=emulator.gateway_url,
        intents=protocol.intents_value(protocol.DEFAULT_INTENTS),
        on_token_dead=deaths,
        keys=keys,
        on_interaction=deferrals.received if deferrals is not None else None,
    )


def new_bot(emulator: DiscordEmulator, world: World) -> BotCredentials:
    bot = emulator.add_bot(f"shard-{uuid.uuid4().hex[:6]}", guild_ids=[world.guild_id])
    return BotCredentials(bot_id=bot.id, token_id=uuid.uuid4(), token=SecretStr(bot.token))


def register(emulator: DiscordEmulator, bot: BotCredentials, guild_id: str, *names: str) -> None:
    """The bot registers these built-in commands in the guild, as the runner's registry would."""
    emulated = emulator.world.bots[bot.bot_id]
    commands = [builtin_command(name).model_dump() for name in names]
    emulator.put_commands(emulated, emulated.application_id, guild_id, commands)


async def forwarded(settings: Settings, rig: Rig, texts: list[str]) -> list[EventEnvelope]:
    """discord.events messages carrying any of `texts`, once every text has appeared."""

    def matching(events: list[EventEnvelope]) -> list[EventEnvelope]:
        return [e for e in events if e.data.get("content") in texts]

    def complete(events: list[EventEnvelope]) -> bool:
        return {e.data["content"] for e in matching(events)} == set(texts)

    events = await read_events(settings.kafka_bootstrap, rig.namespace, rig.keys, until=complete, within_s=15)
    return matching(events)


async def test_a_dm_is_forwarded_keyed_by_the_bot(
    stack_up: Settings, rig: Rig, emulator: DiscordEmulator, world: World
) -> None:
    bot = new_bot(emulator, world)
    (shard,) = await rig.fleet.connect(bot)
    assert await shard.wait_ready(10)
    text = f"psst {uuid.uuid4().hex}"
    emulator.post_user_message(world.user_id, text, to_bot_id=bot.bot_id)

    def dms(events: list[EventEnvelope]) -> list[EventEnvelope]:
        return [e for e in events if e.bot_id == bot.bot_id and e.data.get("content") == text]

    events = await read_events(
        stack_up.kafka_bootstrap, rig.namespace, rig.keys, until=lambda events: bool(dms(events)), within_s=15
    )
    [envelope] = dms(events)
    assert envelope.key == f"dm:{bot.bot_id}"
    assert (envelope.guild_id, envelope.type, envelope.bot_id) == (None, "MESSAGE_CREATE", bot.bot_id)


async def test_a_dispatch_too_large_for_discord_events_is_passed_and_the_shard_goes_on(
    stack_up: Settings, rig: Rig, emulator: DiscordEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka would refuse it, and resuming for it would bring it back: the shard would hear nothing more. (The
    limit is lowered here: a guild of 16 MiB is slow to build.)"""
    monkeypatch.setattr(fleet_module, "EVENT_VALUE_MAX_BYTES", 64 * 1024)
    guild = emulator.add_guild("too-big")
    channels = [emulator.add_channel(guild.id, f"c{n}", topic="t" * 1000) for n in range(100)]
    user = emulator.add_user("carol")
    emulator.add_member(guild.id, user.id)
    bot = emulator.add_bot(f"shard-{uuid.uuid4().hex[:6]}", guild_ids=[guild.id])
    (shard,) = await rig.fleet.connect(BotCredentials(bot.id, uuid.uuid4(), SecretStr(bot.token)))
    assert await shard.wait_ready(10)
    text = f"still here {uuid.uuid4().hex}"
    emulator.post_user_message(user.id, text, channels[0].id)

    def ours(events: list[EventEnvelope]) -> list[EventEnvelope]:
        return [e for e in events if e.bot_id == bot.id]

    events = await read_events(
        stack_up.kafka_bootstrap,
        rig.namespace,
        rig.keys,
        until=lambda events: any(e.data.get("content") == text for e in ours(events)),
        within_s=15,
    )
    assert "GUILD_CREATE" not in {e.type for e in ours(events)}
    assert shard.state is ShardState.READY


async def test_a_lost_connection_resumes_and_loses_nothing(
    stack_up: Settings, rig: Rig, emulator: DiscordEmulator, world: World
) -> None:
    bot = new_bot(emulator, world)
    (shard,) = await rig.fleet.connect(bot)
    assert await shard.wait_ready(10)
    run = uuid.uuid4().hex[:8]
    before = f"before {run}"
    emulator.post_user_message(world.user_id, before, world.channel_id)
    emulator.drop_connections(bot.bot_id)
    away = [f"while away {run} #{n}" for n in range(3)]
    for text in away:
        emulator.post_user_message(world.user_id, text, world.channel_id)
    events = await forwarded(stack_up, rig, [before, *away])
    assert {e.data["content"] for e in events} == {before, *away}
    stats = emulator.stats(bot.bot_id)
    assert (stats["identifies"], stats["resumes"]) == (1, 1)


async def test_a_restarted_fleet_resumes_from_the_redis_checkpoint(
    stack_up: Settings,
    rig: Rig,
    emulator: DiscordEmulator,
    world: World,
    producer: AIOKafkaProducer,
    redis_client: aioredis.Redis,
    http: aiohttp.ClientSession,
) -> None:
    bot = new_bot(emulator, world)
    assert await (await rig.fleet.connect(bot))[0].wait_ready(10)
    # Discord replays only what came after READY's burst: resume from a checkpoint past it.
    seen = f"seen before the restart {uuid.uuid4().hex}"
    emulator.post_user_message(world.user_id, seen, world.channel_id)
    assert await forwarded(stack_up, rig, [seen])
    await rig.fleet.disconnect([bot.bot_id])  # writes the checkpoint, keeps the session (close code 4000)
    saved = await SessionStore(redis_client, rig.namespace).load(bot.bot_id, 0)
    assert saved is not None and saved.seq > 0
    missed = f"missed while down {uuid.uuid4().hex}"
    emulator.post_user_message(world.user_id, missed, world.channel_id)

    successor = make_fleet(
        emulator, rig.namespace, producer, redis_client, http, RestClients(http), Deaths(), rig.keys
    )
    running = asyncio.create_task(successor.run())
    try:
        (shard,) = await successor.connect(bot)
        assert await shard.wait_ready(10)
        assert shard.session_id == saved.session_id
        assert len(await forwarded(stack_up, rig, [missed])) == 1
        stats = emulator.stats(bot.bot_id)
        assert (stats["identifies"], stats["resumes"]) == (1, 1)
    finally:
        running.cancel()
        await successor.close()


async def test_close_code_4004_kills_the_token_for_good(
    rig: Rig, emulator: DiscordEmulator, world: World
) -> None:
    bot = new_bot(emulator, world)
    (shard,) = await rig.fleet.connect(bot)
    assert await shard.wait_ready(10)
    await emulator.revoke_token(bot.bot_id)
    assert await eventually(lambda: rig.deaths.seen, within_s=10)
    assert rig.deaths.seen == [(bot.bot_id, "close_4004")]
    assert bot.bot_id not in rig.fleet
    connections = emulator.stats(bot.bot_id)["gateway_connections"]
    # No reconnect is the behaviour under test: only waiting out the first reconnect backoff (real time in the
    # fleet, no clock to drive) shows that none came.
    await asyncio.sleep(1.5)
    assert emulator.stats(bot.bot_id)["gateway_connections"] == connections
    assert shard.state is ShardState.STOPPED


async def test_identify_limiter_lets_one_identify_per_bucket_through(
    namespace: str, redis_client: aioredis.Redis
) -> None:
    limiter = IdentifyLimiter(redis_client, f"{namespace}{uuid.uuid4().hex[:6]}:")
    await limiter.acquire("42", 0, 1)
    await limiter.acquire("42", 1, 2)  # another bucket of a bot with max_concurrency 2
    await limiter.acquire("43", 0, 1)  # another bot
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire("42", 2, 2), 0.5)  # bucket 0 again: wait for the 5 s
    # Sending the IDENTIFY restarts the interval, however long the handshake took since the acquisition.
    bucket = await limiter.acquire("44", 0, 1)
    await redis_client.pexpire(bucket, 100)
    await limiter.sent(bucket)
    assert await redis_client.pttl(bucket) > 5000


async def test_ledger_claims(namespace: str, redis_client: aioredis.Redis) -> None:
    ledger = ActionLedger(redis_client, namespace)
    action_id = uuid.uuid4().hex
    assert await ledger.claim(action_id) is Claim.FIRST
    assert await ledger.claim(action_id) is Claim.RETRY  # started, never finished: a crash mid-way
    await ledger.finish(action_id)
    assert await ledger.claim(action_id) is Claim.DONE
    assert 0 < await redis_client.ttl(f"{namespace}gw:action:{action_id}") <= 26 * 3600


async def test_a_retried_message_is_deduplicated_by_its_nonce(
    rig: Rig,
    emulator: DiscordEmulator,
    world: World,
    redis_client: aioredis.Redis,
    http: aiohttp.ClientSession,
) -> None:
    bot = new_bot(emulator, world)
    ledger = ActionLedger(redis_client, rig.namespace)
    performer = ActionPerformer(ledger, rig.rest, rig.fleet, rig.deferrals, http, rig.voice)
    action = SendMessage(
        action_id=uuid.uuid4().hex, bot_id=bot.bot_id, channel_id=world.channel_id, content="once"
    )
    assert (await performer.perform(action, bot)).status is Status.DONE
    # A crash after Discord created the message but before the ledger said "done".
    await redis_client.set(f"{rig.namespace}gw:action:{action.action_id}", b"started")
    assert (await performer.perform(action, bot)).status is Status.DONE
    assert (await performer.perform(action, bot)).status is Status.SKIPPED
    assert len(emulator.actions(bot_id=bot.bot_id, kind="message")) == 1
    assert emulator.stats(bot.bot_id)["rest_requests"] == 2


async def test_moderation_is_told_after_discord_answers_and_logged(
    rig: Rig,
    emulator: DiscordEmulator,
    world: World,
    redis_client: aioredis.Redis,
    http: aiohttp.ClientSession,
) -> None:
    bot = new_bot(emulator, world)
    log = emulator.add_channel(world.guild_id, f"mod-log-{uuid.uuid4().hex[:6]}")
    rowdy = emulator.add_user("rowdy")
    emulator.add_member(world.guild_id, rowdy.id)
    owner = emulator.world.guilds[world.guild_id].owner_id
    performer = ActionPerformer(
        ActionLedger(redis_client, rig.namespace), rig.rest, rig.fleet, rig.deferrals, http, rig.voice
    )
    command = emulator.post_user_message(world.user_id, "!ban", world.channel_id)

    def ban(user_id: str) -> Ban:
        report = Report(
            done=f"Banned <@{user_id}>",
            failed=f"Could not ban <@{user_id}>",
            answer=AnswerInChannel(channel_id=world.channel_id, message_id=command["id"]),
            log_channel_id=log.id,
            actor=f"<@{world.user_id}>",
        )
        return Ban(
            action_id=uuid.uuid4().hex,
            bot_id=bot.bot_id,
            guild_id=world.guild_id,
            user_id=user_id,
            report=report,
        )

    refused = await performer.perform(ban(owner), bot)  # Discord acts on nobody above the bot
    assert refused.status is Status.DEAD and "403" in refused.reason
    assert (await performer.perform(ban(rowdy.id), bot)).status is Status.DONE
    replies = [m for m in emulator.history(world.channel_id) if m["author"]["id"] == bot.bot_id]
    assert [m["content"] for m in reversed(replies)] == [
        f"Could not ban <@{owner}>: Discord answered 403 (code 50013): Missing Permissions",
        f"Banned <@{rowdy.id}>",
    ]
    assert all(m["message_reference"]["message_id"] == command["id"] for m in replies)
    logged = [m["content"] for m in reversed(emulator.history(log.id))]
    assert logged == [f"{m['content']} · <@{world.user_id}>" for m in reversed(replies)]

    # A slash command's report answers its interaction: here an unban Discord refuses (no such ban).
    register(emulator, bot, world.guild_id, "unban")
    interaction = emulator.invoke_command(bot.bot_id, world.user_id, world.channel_id, "unban")
    answer = AnswerInteraction(interaction_id=interaction["id"], interaction_token=interaction["token"])
    unban = Unban(
        action_id=uuid.uuid4().hex,
        bot_id=bot.bot_id,
        guild_id=world.guild_id,
        user_id=world.user_id,
        report=Report(done="Unbanned", failed="Could not unban", answer=answer),
    )
    assert (await performer.perform(unban, bot)).status is Status.DEAD
    [response] = emulator.actions(bot_id=bot.bot_id, kind="interaction_response")
    assert response.payload["data"]["content"].startswith("Could not unban: Discord answered 404")


async def test_a_401_stops_the_action_and_reports_the_token_dead(
    rig: Rig,
    emulator: DiscordEmulator,
    world: World,
    redis_client: aioredis.Redis,
    http: aiohttp.ClientSession,
) -> None:
    bot = new_bot(emulator, world)
    await emulator.revoke_token(bot.bot_id)
    performer = ActionPerformer(
        ActionLedger(redis_client, rig.namespace), rig.rest, rig.fleet, rig.deferrals, http, rig.voice
    )
    action = SendMessage(
        action_id=uuid.uuid4().hex, bot_id=bot.bot_id, channel_id=world.channel_id, content="x"
    )
    outcome = await performer.perform(action, bot)
    assert outcome.status is Status.TOKEN_DEAD
    assert "401" in outcome.reason
    assert emulator.stats(bot.bot_id)["rest_401"] == 1


async def test_presence_and_voice_go_over_the_bots_own_connection(
    rig: Rig,
    emulator: DiscordEmulator,
    world: World,
    redis_client: aioredis.Redis,
    http: aiohttp.ClientSession,
) -> None:
    voice = emulator.add_channel(world.guild_id, "Lounge", type=2)
    bot = new_bot(emulator, world)
    assert await (await rig.fleet.connect(bot))[0].wait_ready(10)
    performer = ActionPerformer(
        ActionLedger(redis_client, rig.namespace), rig.rest, rig.fleet, rig.deferrals, http, rig.voice
    )
    presence = PresenceUpdate(
        action_id=uuid.uuid4().hex, bot_id=bot.bot_id, status="idle", activity="dreaming"
    )
    join = VoiceJoin(
        action_id=uuid.uuid4().hex, bot_id=bot.bot_id, guild_id=world.guild_id, channel_id=voice.id
    )
    assert (await performer.perform(presence, bot)).status is Status.DONE
    assert (await performer.perform(join, bot)).status is Status.DONE
    [recorded] = await emulator.wait_actions(bot_id=bot.bot_id, kind="presence")
    assert recorded.payload["status"] == "idle"
    voice_actions = await emulator.wait_actions(bot_id=bot.bot_id, kind="voice_state")
    assert voice_actions and voice_actions[-1].channel_id == voice.id


async def test_a_bot_whose_daily_identify_budget_is_spent_waits_instead_of_identifying(
    rig: Rig, emulator: DiscordEmulator, world: World
) -> None:
    bot = emulator.add_bot("spent", guild_ids=[world.guild_id], session_start_limit=0)
    credentials = BotCredentials(bot_id=bot.id, token_id=uuid.uuid4(), token=SecretStr(bot.token))
    (shard,) = await rig.fleet.connect(credentials)
    assert not await shard.wait_ready(1.5)
    stats = emulator.stats(bot.id)
    assert (stats["identifies"], stats["identifies_rejected"], stats["gateway_connections"]) == (0, 0, 0)
    # GET /gateway/bot and /applications/@me to lay the bot out, then GET /gateway/bot: none left today.
    assert stats["rest_requests"] == 3


async def test_the_fleet_heartbeats_every_connection(
    rig: Rig, emulator: DiscordEmulator, world: World
) -> None:
    bot = new_bot(emulator, world)
    assert await (await rig.fleet.connect(bot))[0].wait_ready(10)
    sends = emulator.stats(bot.bot_id)["gateway_sends"]
    # The emulator asks for a beat every second.
    await wait_until(lambda: emulator.stats(bot.bot_id)["gateway_sends"] >= sends + 2, "two heartbeats")
    assert emulator.stats(bot.bot_id)["connected_sessions"] == 1


async def test_a_persona_image_on_a_private_address_is_dead_lettered_not_fetched(
    rig: Rig,
    emulator: DiscordEmulator,
    world: World,
    redis_client: aioredis.Redis,
    http: aiohttp.ClientSession,
) -> None:
    bot = new_bot(emulator, world)
    async with media_session(allow_private=False) as media:
        performer = ActionPerformer(
            ActionLedger(redis_client, rig.namespace), rig.rest, rig.fleet, rig.deferrals, media, rig.voice
        )
        action = MemberPersonaUpdate(
            action_id=uuid.uuid4().hex,
            bot_id=bot.bot_id,
            guild_id=world.guild_id,
            nick="Luna",
            avatar_url="http://169.254.169.254/latest/meta-data/iam/avatar.png",
        )
        outcome = await performer.perform(action, bot)
    assert outcome.status is Status.DEAD
    assert outcome.reason == "avatar_url: 169.254.169.254 is not a public address"
    assert emulator.actions(bot_id=bot.bot_id, kind="persona") == []


async def test_a_slow_answer_is_deferred_in_time_and_then_edits_it_a_fast_one_is_the_response(
    rig: Rig,
    emulator: DiscordEmulator,
    world: World,
    redis_client: aioredis.Redis,
    http: aiohttp.ClientSession,
) -> None:
    bot = new_bot(emulator, world)
    register(emulator, bot, world.guild_id, "roll")
    assert await (await rig.fleet.connect(bot))[0].wait_ready(10)
    performer = ActionPerformer(
        ActionLedger(redis_client, rig.namespace), rig.rest, rig.fleet, rig.deferrals, http, rig.voice
    )

    def responses(interaction_id: str) -> list[dict[str, Any]]:
        found = emulator.actions(bot_id=bot.bot_id, kind="interaction_response")
        return [a.payload for a in found if a.payload["interaction_id"] == interaction_id]

    def answer(interaction: dict[str, Any], **fields: Any) -> InteractionResponse:
        return InteractionResponse(
            action_id=uuid.uuid4().hex,
            bot_id=bot.bot_id,
            guild_id=world.guild_id,
            interaction_id=interaction["id"],
            interaction_token=interaction["token"],
            **fields,
        )

    # Nothing answers within the deadline: the runner defers, inside Discord's 3 s (the emulator refuses a
    # later acknowledgement); the answer then edits the thinking message.
    slow = emulator.invoke_command(bot.bot_id, world.user_id, world.channel_id, "roll")
    assert await eventually(lambda: responses(slow["id"]), within_s=10)
    [deferral] = responses(slow["id"])
    assert (deferral["stage"], deferral["type"]) == ("callback", 5)
    assert (await performer.perform(answer(slow, content="rolled 4"), bot)).status is Status.DONE
    assert [(r["stage"], (r.get("data") or {}).get("content")) for r in responses(slow["id"])] == [
        ("callback", None),
        ("edit_original", "rolled 4"),
    ]
    # An error after the deferral answers privately: the thinking message goes, an ephemeral follow-up comes.
    refused = emulator.invoke_command(bot.bot_id, world.user_id, world.channel_id, "roll")
    assert await eventually(lambda: responses(refused["id"]), within_s=10)
    done = await performer.perform(answer(refused, content="not here", ephemeral=True), bot)
    assert done.status is Status.DONE
    stages = [(r["stage"], r.get("data") or {}) for r in responses(refused["id"])]
    assert [stage for stage, _ in stages] == ["callback", "delete_original", "followup"]
    assert stages[2][1]["flags"] == 64
    # An answer before the deadline is the response itself, and nothing defers it afterwards.
    fast = emulator.invoke_command(bot.bot_id, world.user_id, world.channel_id, "roll")
    assert await eventually(lambda: fast["id"] in rig.deferrals.watched(), within_s=10)
    assert (await performer.perform(answer(fast, content="rolled 6"), bot)).status is Status.DONE
    assert fast["id"] not in rig.deferrals.watched()
    [response] = responses(fast["id"])
    assert (response["stage"], response["type"], response["data"]["content"]) == ("callback", 4, "rolled 6")
