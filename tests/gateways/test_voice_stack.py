"""Voice end to end in process: a fleet and its voice manager against the emulator's voice server, with the
real Kafka (track ends) and Redis (presences). The emulator decrypts the transport and DAVE, decodes the
Opus and measures what arrived (duration, level, dominant frequency, speaking flags)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from elevenlabs.client import AsyncElevenLabs

from bench.listen import espeak_pcm
from emulator.discord import DiscordEmulator
from emulator.discord.client import EmulatorControl
from emulator.elevenlabs import ElevenLabsCompatibleServer
from gateways.fleet import Fleet
from gateways.media import media_session
from gateways.rest import RestClients
from gateways.shard import BotCredentials
from gateways.voice.manager import SPEECH_PREFIX, VoiceManager
from gateways.voice.speech import Speech
from gateways.voice.store import VoiceStore
from models.actions import VoiceJoin, VoiceLeave, VoicePlay, VoiceSpeak
from models.events import VOICE_TRACK_END, VOICE_TRANSCRIPT, VoiceTranscript
from settings import Settings
from streams.catalog import DISCORD_EVENTS
from tests.data_keys import MemoryDataKeys
from tests.gateways.conftest import World, read_topic, tone, voice_manager
from tests.gateways.test_gateway_shard import Deaths, api_base, http, make_fleet, new_bot
from tests.waiting import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(90)]

__all__ = ["api_base", "http"]  # fixtures of the shard tests, used here


@dataclass
class VoiceRig:
    fleet: Fleet
    voice: VoiceManager
    namespace: str
    library: Path


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("music")
    tone(root / "tone440.ogg", 1.6, 440)
    tone(root / "long660.ogg", 30, 660)
    return root


@dataclass
class RigParts:
    """What a voice rig is built from: the emulator, the stack's clients, the test's namespace and library."""

    emulator: DiscordEmulator
    namespace: str
    producer: AIOKafkaProducer
    redis_client: aioredis.Redis
    http: aiohttp.ClientSession
    media: aiohttp.ClientSession
    library: Path


async def make_rig(parts: RigParts, speech: Speech | None = None) -> VoiceRig:
    fleet = make_fleet(
        parts.emulator,
        parts.namespace,
        parts.producer,
        parts.redis_client,
        parts.http,
        RestClients(parts.http),
        Deaths(),
        MemoryDataKeys(),
    )
    voice = voice_manager(
        fleet,
        parts.http,
        parts.media,
        parts.producer,
        parts.redis_client,
        parts.namespace,
        parts.emulator.gateway_url,
        parts.library,
        speech,
    )
    return VoiceRig(fleet, voice, parts.namespace, parts.library)


@pytest.fixture
async def media() -> AsyncIterator[aiohttp.ClientSession]:
    async with media_session(allow_private=True) as session:
        yield session


@contextlib.asynccontextmanager
async def running(rig: VoiceRig) -> AsyncIterator[VoiceRig]:
    """The rig's fleet and voice manager at work, as in a runner; closed after."""
    tasks = [asyncio.create_task(rig.fleet.run()), asyncio.create_task(rig.voice.run())]
    try:
        yield rig
    finally:
        for task in tasks:
            task.cancel()
        await rig.voice.close()
        await rig.fleet.close()


@pytest.fixture
async def parts(
    api_base: None,
    emulator: DiscordEmulator,
    namespace: str,
    producer: AIOKafkaProducer,
    redis_client: aioredis.Redis,
    http: aiohttp.ClientSession,
    media: aiohttp.ClientSession,
    library: Path,
) -> RigParts:
    return RigParts(emulator, namespace, producer, redis_client, http, media, library)


@pytest.fixture
async def rig(parts: RigParts) -> AsyncIterator[VoiceRig]:
    async with running(await make_rig(parts)) as rig:
        yield rig


@dataclass
class Heard:
    """What the emulator's voice server received from one bot in one channel."""

    emulator: DiscordEmulator
    guild_id: str
    channel_id: str
    bot_id: str

    def now(self) -> dict[str, Any]:
        recordings = self.emulator.voice.received(self.guild_id, self.channel_id)["recordings"]
        return next((r for r in recordings if r["user_id"] == self.bot_id), {"packets": 0, "speaking": []})

    async def packets_grow(self, by: int, what: str) -> dict[str, Any]:
        before = self.now()["packets"]
        return await wait_until(lambda: (now := self.now())["packets"] >= before + by and now, what)

    async def speaking_off(self, what: str) -> dict[str, Any]:
        return await wait_until(lambda: (now := self.now())["speaking"][-1:] == [0] and now, what)


async def in_channel(
    rig: VoiceRig, emulator: DiscordEmulator, world: World, name: str
) -> tuple[BotCredentials, Heard]:
    """A new bot, connected, and a new voice channel for it."""
    channel = emulator.add_channel(world.guild_id, name, type=2)
    bot = new_bot(emulator, world)
    assert await (await rig.fleet.connect(bot))[0].wait_ready(10)
    return bot, Heard(emulator, world.guild_id, channel.id, bot.bot_id)


def play(bot: BotCredentials, heard: Heard, command: str, **fields: Any) -> VoicePlay:
    return VoicePlay(
        action_id=action_id(),
        bot_id=bot.bot_id,
        channel_id=heard.channel_id,
        command=command,
        **fields,
    )


def action_id() -> str:
    return uuid.uuid4().hex


async def track_ends(settings: Settings, namespace: str, bot_id: str, count: int) -> list[dict[str, Any]]:
    return await edge_events(settings, namespace, bot_id, VOICE_TRACK_END, count)


async def edge_events(
    settings: Settings, namespace: str, bot_id: str, event_type: str, count: int
) -> list[dict[str, Any]]:
    """The data of the first `count` events of `event_type` the edge published for the bot."""

    def found(records: list[Any]) -> list[dict[str, Any]]:
        envelopes = [DISCORD_EVENTS.codec.decode(record.value) for record in records]
        return [e.data for e in envelopes if e.type == event_type and e.bot_id == bot_id]

    records = await read_topic(
        settings.kafka_bootstrap,
        DISCORD_EVENTS.name_in(namespace),
        until=lambda records: len(found(records)) >= count,
        within_s=30,
    )
    return found(records)


async def test_a_library_tone_arrives_with_its_frequency_and_duration_and_the_end_is_published(
    rig: VoiceRig, emulator: DiscordEmulator, world: World, stack_up: Settings
) -> None:
    bot, heard = await in_channel(rig, emulator, world, "Music")
    guild = world.guild_id
    await rig.voice.perform(
        guild, VoiceJoin(action_id=action_id(), bot_id=bot.bot_id, channel_id=heard.channel_id), bot
    )
    await rig.voice.perform(guild, play(bot, heard, "play", track="TONE440"), bot)
    [end] = await track_ends(stack_up, rig.namespace, bot.bot_id, 1)
    assert end == {
        "schema_version": 1,
        "guild_id": guild,
        "channel_id": heard.channel_id,
        "track": "TONE440",
        "reason": "finished",
    }
    got = await heard.speaking_off("the speaking flag dropped after the track")
    # 80 frames of tone, end-to-end encrypted (DAVE), and five of silence, which DAVE leaves as they are.
    assert got["packets"] == 85 and got["lost_packets"] == 0 and got["undecodable_frames"] == 0
    assert got["e2ee_frames"] == 80
    assert got["duration_s"] == pytest.approx(1.7, abs=0.02)
    assert got["dominant_hz"] == pytest.approx(440, abs=5)
    assert got["rms"] > 0.05  # ffmpeg's sine is at 1/8 of full scale: 0.088 RMS while it sounds
    await rig.voice.perform(guild, VoiceLeave(action_id=action_id(), bot_id=bot.bot_id), bot)
    assert (bot.bot_id, guild) not in rig.voice.voices
    await wait_until(lambda: bot.bot_id not in emulator.world.guilds[guild].voice_states, "the bot left")


async def test_pause_stops_the_packets_resume_continues_and_a_volume_change_is_heard(
    rig: VoiceRig, emulator: DiscordEmulator, world: World, stack_up: Settings
) -> None:
    bot, heard = await in_channel(rig, emulator, world, "Pausing")
    guild = world.guild_id
    await rig.voice.perform(guild, play(bot, heard, "play", track="long660"), bot)
    await heard.packets_grow(25, "audio")
    await rig.voice.perform(guild, play(bot, heard, "pause"), bot)
    paused = await heard.speaking_off("the speaking flag dropped on pause")
    # Nothing is sent while paused: the count is the same after a round trip through Redis and Kafka.
    await rig.voice.perform(guild, play(bot, heard, "volume", volume=50), bot)
    assert heard.now()["packets"] == paused["packets"]
    await rig.voice.perform(guild, play(bot, heard, "resume"), bot)
    resumed = await heard.packets_grow(25, "audio again after resume")
    assert resumed["speaking"][-2:] == [0, 1] and resumed["dominant_hz"] == pytest.approx(660, abs=5)
    await rig.voice.perform(guild, play(bot, heard, "skip"), bot)
    [end] = await track_ends(stack_up, rig.namespace, bot.bot_id, 1)
    assert (end["track"], end["reason"]) == ("long660", "skipped")
    await rig.voice.perform(guild, play(bot, heard, "play", track="no such title"), bot)
    ends = await track_ends(stack_up, rig.namespace, bot.bot_id, 2)
    assert (ends[1]["track"], ends[1]["reason"]) == ("no such title", "failed")
    await rig.voice.perform(guild, VoiceLeave(action_id=action_id(), bot_id=bot.bot_id), bot)


async def test_a_reply_is_spoken_with_espeak_and_with_the_elevenlabs_voice(
    parts: RigParts, emulator: DiscordEmulator, world: World, namespace: str, stack_up: Settings
) -> None:
    async with ElevenLabsCompatibleServer(api_key="xi-test") as elevenlabs:
        speech = Speech(AsyncElevenLabs(base_url=elevenlabs.root_url, api_key="xi-test"))
        rig = await make_rig(parts, speech)
        async with running(rig):
            bot, heard = await in_channel(rig, emulator, world, "Talk")
            guild = world.guild_id
            said = VoiceSpeak(
                action_id=action_id(),
                bot_id=bot.bot_id,
                channel_id=heard.channel_id,
                text="Hello, I am Luna.",
            )
            await rig.voice.perform(guild, said, bot)  # joins the channel first
            [end] = await track_ends(stack_up, namespace, bot.bot_id, 1)
            assert (end["track"], end["reason"]) == (f"{SPEECH_PREFIX}{said.action_id}", "finished")
            spoken = heard.now()
            assert spoken["duration_s"] > 0.8 and spoken["rms"] > 0.01  # espeak's speech, not silence
            luna = VoiceSpeak(
                action_id=action_id(),
                bot_id=bot.bot_id,
                channel_id=heard.channel_id,
                text="And now in my own voice.",
                voice_id="voice-luna",
            )
            await rig.voice.perform(guild, luna, bot)
            ends = await track_ends(stack_up, namespace, bot.bot_id, 2)
            assert ends[1]["reason"] == "finished"
            assert [(c.voice_id, c.text, c.status) for c in elevenlabs.calls] == [
                ("voice-luna", "And now in my own voice.", 200)
            ]


async def test_a_member_says_lunas_name_and_the_listening_bot_publishes_the_transcript(
    rig: VoiceRig, emulator: DiscordEmulator, world: World, namespace: str, stack_up: Settings
) -> None:
    bot, heard = await in_channel(rig, emulator, world, "Chat")
    guild, member = world.guild_id, world.user_id
    join = VoiceJoin(
        action_id=action_id(), bot_id=bot.bot_id, channel_id=heard.channel_id, listen_for=["Luna"]
    )
    await rig.voice.perform(guild, join, bot)
    async with EmulatorControl(emulator.base_url) as control:
        await control.user_voice(guild, member, heard.channel_id)
        sent_to = await control.voice_say(guild, heard.channel_id, member, espeak_pcm("luna what time is it"))
    assert sent_to == [bot.bot_id]
    # The member joined the bot's DAVE group: what the bot heard was end-to-end encrypted.
    dave = emulator.voice.sessions[(guild, bot.bot_id)].dave
    assert dave is not None and int(member) in dave.speakers
    [transcript] = await edge_events(stack_up, namespace, bot.bot_id, VOICE_TRANSCRIPT, 1)
    assert VoiceTranscript.model_validate(transcript) == VoiceTranscript(
        guild_id=guild, channel_id=heard.channel_id, user_id=member, content="luna what time is it"
    )


async def test_a_dropped_voice_socket_resumes_and_an_ended_session_is_joined_again(
    rig: VoiceRig, emulator: DiscordEmulator, world: World
) -> None:
    bot, heard = await in_channel(rig, emulator, world, "Flaky")
    guild = world.guild_id
    await rig.voice.perform(guild, play(bot, heard, "play", track="long660"), bot)
    [ssrc] = (await heard.packets_grow(10, "audio"))["ssrcs"]
    assert emulator.voice.drop(bot.bot_id, 4015) == 1  # voice server crashed: RESUME, same session
    assert (await heard.packets_grow(25, "audio after resume"))["ssrcs"] == [ssrc]
    assert emulator.voice.drop(bot.bot_id, 4006) == 1  # the session is gone: a new op 4, a new session
    await wait_until(lambda: len(heard.now()["ssrcs"]) == 2, "a new session")
    await heard.packets_grow(25, "audio after rejoin")
    voice = rig.voice.voices[(bot.bot_id, guild)]
    assert voice.player.track is not None and voice.player.track.track == "long660"


async def test_a_runner_taking_the_bot_over_rejoins_and_continues_the_track(
    parts: RigParts, rig: VoiceRig, emulator: DiscordEmulator, world: World
) -> None:
    bot, heard = await in_channel(rig, emulator, world, "Handover")
    guild = world.guild_id
    started = play(bot, heard, "play", track="long660")
    await rig.voice.perform(guild, started, bot)
    await heard.packets_grow(100, "two seconds")
    store = VoiceStore(parts.redis_client, parts.namespace)
    saved = await wait_until(
        lambda: _saved_position(store, bot.bot_id), "a saved position past one second", timeout_s=10
    )
    assert saved is not None
    # The first runner lets the bot go (as on a rebalance; a kill only loses the last second's saves).
    await rig.voice.release({bot.bot_id})
    await rig.fleet.disconnect({bot.bot_id})
    other = await make_rig(parts)
    async with running(other):
        assert await (await other.fleet.connect(bot))[0].wait_ready(10)
        await other.voice.restore(bot)
        voice = other.voice.voices[(bot.bot_id, guild)]
        assert voice.channel_id == heard.channel_id and voice.player.track is not None
        assert voice.player.track.play_id == started.action_id and voice.player.track.start_s >= saved
        await wait_until(lambda: len(heard.now()["ssrcs"]) == 2, "a rejoin")
        await heard.packets_grow(25, "the track again")


async def _saved_position(store: VoiceStore, bot_id: str) -> float | None:
    presences = await store.load(bot_id)
    playing = presences[0].playing if presences else None
    return playing.position_s if playing is not None and playing.position_s > 1 else None
