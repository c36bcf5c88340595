"""Voice end to end (issue 16's "Done when"), through every service of the demo and the emulator's voice
server: /play of a generated tone in the music library is received in the voice channel with its duration
and frequency, the queue advances by itself, /pause stops the packets and /resume continues them, /stop
leaves; Luna, in the Lounge, says her reply to a mention with her ElevenLabs voice; and a runner killed while
playing comes back, rejoins and continues the queue."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import httpx
import pytest

from bench.listen import espeak_pcm
from demo.music import write_tone
from emulator.elevenlabs.server import ElevenLabsCompatibleServer
from emulator.openai import OpenAICompatibleServer
from emulator.openai.server import Behaviour
from models.events import VOICE_TRACK_END, VOICE_TRANSCRIPT, EventEnvelope
from settings import Settings
from streams.catalog import DISCORD_EVENTS
from tests.e2e.conftest import ANSWER_S, COMPLETION, World, demo_env, demo_world, message_text
from tests.waiting import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

T = TypeVar("T")

# The library's tones: (title, frequency in Hz, seconds).
FIRST, SECOND, LONG = ("tone 440", 440.0, 2.0), ("tone 880", 880.0, 2.0), ("long tone 660", 660.0, 12.0)
# Luna's voice in her preset, known to the ElevenLabs-compatible server here.
LUNA_VOICE = "voice-luna-custom"
# Opus frames are 20 ms.
FRAMES_PER_S = 50
# How far the received duration may be from the track's: the frames of silence after each stretch of audio
# and the frames of the next track sent before the measurement.
DURATION_TOLERANCE_S = 0.3
FREQUENCY_TOLERANCE_HZ = 5.0


@dataclass(frozen=True)
class VoiceDemo(World):
    elevenlabs: ElevenLabsCompatibleServer
    lounge: str

    async def play(self, user: str, title: str) -> None:
        """/play `title`, played or queued."""
        options = [{"name": "query", "type": 3, "value": title}]
        answer = await self.command(user, "play", options)
        assert answer.startswith(("Playing", "Queued")), answer

    async def command(self, user: str, name: str, options: list[dict[str, Any]] | None = None) -> str:
        """A slash command to the music bot, by `user`: the text it was answered with (the answer comes after
        the processors acted, not with the receiver's deferral)."""
        bot = self.bots["Music Bot"]
        since = await self.last_seq()
        invoked = await self.control.invoke_command(
            bot, self.users[user], self.channels["music"], name, options
        )

        def answered(action: dict[str, Any]) -> bool:
            payload = action["payload"]
            return (
                action["kind"] == "interaction_response"
                and payload["interaction_id"] == invoked["id"]
                and bool(message_text(payload.get("data")))
            )

        answer = await self.wait_action(since, answered)
        return message_text(answer["payload"]["data"])

    async def until(self, check: Callable[[], Awaitable[T | None]], what: str) -> T:
        """`check`'s first truthy answer; on a timeout the error shows the demo's logs."""
        try:
            found = await wait_until(check, what, timeout_s=ANSWER_S, every_s=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.running.explain()}") from None
        assert found is not None
        return found

    async def fresh(self) -> None:
        """An empty queue and nothing received, whatever a test before left."""
        await self.command("you", "stop")
        await self.control.clear_voice_received()

    async def recording(self, bot: str) -> dict[str, Any]:
        """What the Lounge received from `bot` so far (empty counts before its first packet)."""
        received = await self.control.voice_received(self.guild_id, self.lounge)
        found = [r for r in received["recordings"] if r["user_id"] == self.bots[bot]]
        return found[0] if found else {"packets": 0, "duration_s": 0.0, "ssrcs": [], "speaking": []}

    async def received_packets(self, bot: str, at_least: int, what: str) -> dict[str, Any]:
        async def enough() -> dict[str, Any] | None:
            recording = await self.recording(bot)
            return recording if recording["packets"] >= at_least else None

        return await self.until(enough, what)

    async def track_end(self, track: str, reason: str = "finished") -> EventEnvelope:
        """The edge's end of `track` on the demo's discord.events."""
        end: EventEnvelope = await self.wait_record(
            DISCORD_EVENTS,
            lambda e: e.type == VOICE_TRACK_END and e.data["track"] == track and e.data["reason"] == reason,
            timeout_s=ANSWER_S + 30,
        )
        return end

    async def speech_finished(self, bot_id: str, after: EventEnvelope | None = None) -> EventEnvelope:
        """The edge's end of a spoken reply of the bot, finished (after the event `after`, when given)."""
        end: EventEnvelope = await self.wait_record(
            DISCORD_EVENTS,
            lambda e: (
                e.type == VOICE_TRACK_END
                and e.bot_id == bot_id
                and e.data["track"].startswith("speech:")
                and e.data["reason"] == "finished"
                and (after is None or e.received_at > after.received_at)
            ),
            timeout_s=ANSWER_S + 30,
        )
        return end

    async def in_voice(self, bot: str) -> str | None:
        """The voice channel `bot` last asked the emulator for (its op 4s are recorded as voice_state)."""
        asked = await self.control.actions(since=0, bot_id=self.bots[bot], kind="voice_state")
        mine = [a for a in asked if a["guild_id"] == self.guild_id]
        return mine[-1]["payload"]["channel_id"] if mine else None


@pytest.fixture(scope="module")
async def voice(stack_up: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[VoiceDemo]:
    library = tmp_path_factory.mktemp("music")
    for title, frequency_hz, seconds in (FIRST, SECOND, LONG):
        write_tone(library / f"{title}.flac", frequency_hz, seconds)
    inference = await OpenAICompatibleServer(Behaviour(models=[], reply_template=COMPLETION)).start()
    elevenlabs = await ElevenLabsCompatibleServer(voices={LUNA_VOICE: "Luna"}, api_key="el-key").start()
    env = demo_env(
        OPENAI_BASE_URL=inference.base_url,
        OPENAI_API_KEY="test-key",
        DEEP_MUSIC_LIBRARY=str(library),
        ELEVENLABS_URL=elevenlabs.root_url,
        ELEVENLABS_API_KEY="el-key",
    )
    try:
        async with demo_world(stack_up, tmp_path_factory.mktemp("e2e-voice"), env) as world:
            spec = await world.control.world()
            [guild] = [g for g in spec["guilds"] if g["id"] == world.guild_id]
            lounge = next(c["id"] for c in guild["channels"] if c["name"] == "Lounge")
            yield VoiceDemo(
                **{f.name: getattr(world, f.name) for f in fields(world)},
                elevenlabs=elevenlabs,
                lounge=lounge,
            )
    finally:
        await elevenlabs.stop()
        await inference.stop()


async def test_play_sounds_the_tone_and_the_queue_advances_by_itself(voice: VoiceDemo) -> None:
    await voice.control.clear_voice_received()
    # You hang out in the Lounge (as in the demo): the music bot joins you there.
    await voice.play("you", FIRST[0])
    await voice.play("you", SECOND[0])
    await voice.track_end(FIRST[0])
    first = await voice.recording("Music Bot")
    assert abs(first["dominant_hz"] - FIRST[1]) <= FREQUENCY_TOLERANCE_HZ, first
    assert first["duration_s"] >= FIRST[2] - 0.05, first
    await voice.control.clear_voice_received()
    # Nobody asked for the second tone again: the track end moved the queue.
    await voice.track_end(SECOND[0])
    second = await voice.recording("Music Bot")
    assert abs(second["dominant_hz"] - SECOND[1]) <= FREQUENCY_TOLERANCE_HZ, second
    assert second["duration_s"] <= SECOND[2] + DURATION_TOLERANCE_S, second
    assert await voice.in_voice("Music Bot") == voice.lounge


async def test_pause_stops_the_packets_resume_continues_and_stop_leaves(voice: VoiceDemo) -> None:
    await voice.fresh()
    await voice.play("you", LONG[0])
    await voice.received_packets("Music Bot", FRAMES_PER_S, "a second of the long tone")
    await voice.command("you", "pause")

    async def silent() -> dict[str, Any] | None:
        recording = await voice.recording("Music Bot")
        return recording if recording["speaking"] and recording["speaking"][-1] == 0 else None

    paused = await voice.until(silent, "the speaking flag off after /pause")
    # A command's round trip through the platform later, not one packet more.
    assert (await voice.command("you", "queue")).startswith(f"Now playing: {LONG[0]} (paused)")
    assert (await voice.recording("Music Bot"))["packets"] == paused["packets"]
    await voice.command("you", "resume")
    await voice.received_packets(
        "Music Bot", paused["packets"] + FRAMES_PER_S, "the tone again after /resume"
    )
    assert await voice.command("you", "stop") == "Stopped, cleared the queue and left."

    async def left() -> bool:
        return await voice.in_voice("Music Bot") is None

    await voice.until(left, "the music bot out of voice after /stop")
    await voice.track_end(LONG[0], "stopped")
    stopped = await voice.recording("Music Bot")
    assert abs(stopped["dominant_hz"] - LONG[1]) <= FREQUENCY_TOLERANCE_HZ, stopped
    assert stopped["duration_s"] < LONG[2], stopped


async def test_luna_in_the_lounge_says_her_reply_with_her_elevenlabs_voice(voice: VoiceDemo) -> None:
    async def luna_there() -> bool:
        return await voice.in_voice("Luna") == voice.lounge

    # Her configuration names the Lounge: she joined it when she was deployed.
    await voice.until(luna_there, "Luna in the Lounge")
    await voice.control.clear_voice_received()
    since = await voice.last_seq()
    luna = voice.bots["Luna"]
    await voice.control.post_user_message(
        voice.users["aiko"], f"<@{luna}> what are you up to tonight?", voice.channels["general"]
    )
    reply = await voice.wait_action(
        since,
        lambda a: (
            a["bot_id"] == luna
            and a["kind"] in ("message", "reply")
            and "nebula" in message_text(a["payload"]).lower()
        ),
    )
    end = await voice.speech_finished(luna)
    assert end.data["channel_id"] == voice.lounge
    said = [call for call in voice.elevenlabs.calls if "nebula" in call.text.lower()]
    assert said and said[-1].voice_id == LUNA_VOICE and said[-1].status == 200
    assert "<@" not in said[-1].text and "nebula" in message_text(reply["payload"]).lower()
    spoken = await voice.recording("Luna")
    # The ElevenLabs-compatible server speaks about 15 characters a second (in silence).
    assert spoken["duration_s"] >= len(said[-1].text) / 15 - 0.5, spoken


async def test_luna_hears_her_name_said_in_the_lounge_and_answers_there(voice: VoiceDemo) -> None:
    async def luna_there() -> bool:
        return await voice.in_voice("Luna") == voice.lounge

    await voice.until(luna_there, "Luna in the Lounge")
    luna, aiko = voice.bots["Luna"], voice.users["aiko"]
    await voice.control.user_voice(voice.guild_id, aiko, voice.lounge)
    since = await voice.last_seq()
    sent_to = await voice.control.voice_say(
        voice.guild_id, voice.lounge, aiko, espeak_pcm("luna what time is it")
    )
    assert luna in sent_to
    heard = await voice.wait_record(
        DISCORD_EVENTS,
        lambda e: e.type == VOICE_TRANSCRIPT and e.bot_id == luna,
        timeout_s=ANSWER_S,
        as_stored=True,
    )
    # Who spoke and what was said travel sealed under the speaker's key.
    assert heard.sealed is not None and "content" not in heard.data and "user_id" not in heard.data
    reply = await voice.wait_action(
        since,
        lambda a: (
            a["bot_id"] == luna
            and a["kind"] in ("message", "reply")
            and a["channel_id"] == voice.lounge
            and "nebula" in message_text(a["payload"]).lower()
        ),
    )
    assert "nebula" in message_text(reply["payload"]).lower()
    end = await voice.speech_finished(luna, after=heard)
    assert end.data["channel_id"] == voice.lounge


async def test_a_runner_killed_while_playing_rejoins_and_continues_the_queue(voice: VoiceDemo) -> None:
    await voice.fresh()
    await voice.play("you", LONG[0])
    await voice.play("you", FIRST[0])
    before = await voice.received_packets("Music Bot", FRAMES_PER_S, "a second of the long tone")
    async with httpx.AsyncClient(base_url=voice.running.url) as playground:
        [gateway] = [
            p for p in (await playground.get("/api/live")).json()["processes"] if p["name"] == "gateway"
        ]
    os.killpg(gateway["pid"], signal.SIGKILL)
    # The supervisor restarts the runner; the new owner of the bot rejoins and plays on (a new SSRC).
    rejoined = await voice.received_packets(
        "Music Bot", before["packets"] + FRAMES_PER_S, "the long tone again after the runner's restart"
    )
    await voice.track_end(FIRST[0])
    after = await voice.recording("Music Bot")
    assert len(after["ssrcs"]) >= 2 and after["packets"] > rejoined["packets"], after
    # The long tone went on from about where it was, not from its start: the whole recording is shorter
    # than both tracks played again from the start would be.
    assert after["duration_s"] < 2 * LONG[2] + FIRST[2], after
