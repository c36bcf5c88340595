"""A runner's voice: each (bot, guild) with its connection and player.

Joining goes over the bot's own gateway shard (op 4, as Discord requires), whose VOICE_STATE_UPDATE (this
bot's voice session) and VOICE_SERVER_UPDATE (token and endpoint) the fleet routes here; with both, the
voice connection opens. What plays is saved to Redis every second, so the runner that takes a bot over
rejoins and goes on (`restore`); a runner letting a bot go closes its connections without leaving
(`release`), so the channel keeps the bot for the next owner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gateways import dispatch, protocol
from gateways.fleet import Fleet
from gateways.shard import BotCredentials, GatewayShard
from gateways.voice.connection import VoiceConnection, VoiceServer
from gateways.voice.listener import Listener, RecognitionPool
from gateways.voice.player import EndReason, Player, Playing
from gateways.voice.protocol import AfterClose
from gateways.voice.sources import (
    LibraryFile,
    PcmStream,
    TrackRefused,
    resolve_track,
    url_audio,
)
from gateways.voice.speech import Speech
from gateways.voice.store import NowPlaying, VoicePresence, VoiceStore
from models.actions import VoiceJoin, VoiceLeave, VoicePlay, VoiceSpeak
from models.events import EventEnvelope, VoiceTrackEnd, VoiceTranscript

log = logging.getLogger(__name__)

SHARD_READY_S = 10.0
# Discord answers a voice state update within a second or two; a voice server can take longer to assign.
JOIN_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
SAVE_INTERVAL_S = 1.0
# A spoken reply's end event names it so, never a library title.
SPEECH_PREFIX = "speech:"

VoiceAction = VoiceJoin | VoiceLeave | VoicePlay | VoiceSpeak
EventPublisher = Callable[[EventEnvelope], Awaitable[None]]


class VoiceFailed(Exception):
    """The voice action cannot be performed (the message says why, naming the field where one is at fault)."""


@dataclass
class _Joining:
    channel_id: str
    done: asyncio.Future[VoiceServer]
    session_id: str | None = None
    token: str | None = None
    endpoint: str | None = None

    def server(self, bot_id: str, guild_id: str) -> VoiceServer | None:
        """The voice server, once both dispatches arrived (the endpoint is null while Discord assigns one)."""
        if not (self.session_id and self.token and self.endpoint):
            return None
        return VoiceServer(bot_id, guild_id, self.channel_id, self.session_id, self.token, self.endpoint)


class Voice:
    """A bot's voice in one guild: its connection and the player sending into it."""

    def __init__(
        self,
        bot: BotCredentials,
        guild_id: str,
        channel_id: str,
        connection: VoiceConnection,
        on_end: Callable[[Voice, Playing, EndReason], None],
    ) -> None:
        self.bot = bot
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.connection = connection
        self.player = Player(connection, lambda playing, reason: on_end(self, playing, reason))
        # Set while the agent listens (its VoiceJoin named what it answers to).
        self.listener: Listener | None = None

    def presence(self) -> VoicePresence:
        track = self.player.track
        playing = (
            None
            if track is None
            else NowPlaying(play_id=track.play_id, track=track.track, position_s=track.position_s)
        )
        return VoicePresence(
            guild_id=self.guild_id,
            channel_id=self.channel_id,
            volume=self.player.volume,
            paused=self.player.paused,
            playing=playing,
        )


class VoiceManager:
    def __init__(
        self,
        *,
        fleet: Fleet,
        http: aiohttp.ClientSession,
        gateway_url: str,
        library_root: Path,
        media: aiohttp.ClientSession,
        allow_private_media: bool,
        speech: Speech,
        publish: EventPublisher,
        store: VoiceStore,
    ) -> None:
        """`media`: the session audio URLs are fetched with (gateways.media.media_session)."""
        self._fleet = fleet
        self._http = http
        self._gateway_url = gateway_url
        self._library_root = library_root
        self._media = media
        self._allow_private_media = allow_private_media
        self._speech = speech
        self._publish = publish
        self._store = store
        self.voices: dict[tuple[str, str], Voice] = {}
        self._joining: dict[tuple[str, str], _Joining] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._recognition = RecognitionPool()

    # actions

    async def perform(self, guild_id: str, action: VoiceAction, bot: BotCredentials) -> None:
        match action:
            case VoiceJoin():
                voice = await self.join(bot, guild_id, action.channel_id)
                await self._listen(voice, action.listen_for)
            case VoiceLeave():
                await self.leave(bot, guild_id)
                return
            case VoiceSpeak():
                voice = await self.join(bot, guild_id, action.channel_id)
                audio = self._speech.audio(action.text, action.voice_id)
                track = f"{SPEECH_PREFIX}{action.action_id}"[:200]
                await voice.player.say(Playing(action.action_id, track, await PcmStream.open(audio)))
            case VoicePlay():
                voice = await self._control(bot, guild_id, action)
        await self._save(bot.bot_id, [voice])

    async def _control(self, bot: BotCredentials, guild_id: str, action: VoicePlay) -> Voice:
        voice = self.voices.get((bot.bot_id, guild_id))
        if action.command == "play":
            if action.channel_id is not None and (voice is None or voice.channel_id != action.channel_id):
                voice = await self.join(bot, guild_id, action.channel_id)
            if voice is None:
                raise VoiceFailed("channel_id: the bot is in no voice channel of the guild and none is named")
            if action.volume is not None:
                voice.player.set_volume(action.volume)
            await self._play(voice, action.action_id, action.track)
            return voice
        if voice is None:
            raise VoiceFailed(
                f"voice_play {action.command}: the bot is in no voice channel of guild {guild_id}"
            )
        player = voice.player
        match action.command:
            case "skip":
                await player.skip()
            case "stop":
                await player.stop()
            case "pause":
                player.pause()
            case "resume":
                player.resume()
            case "volume":
                if action.volume is None:
                    raise VoiceFailed("volume: required by the volume command")
                player.set_volume(action.volume)
        return voice

    async def _play(self, voice: Voice, play_id: str, track: str, start_s: float = 0.0) -> None:
        """Start `track` at `start_s`; one that cannot be played ends as failed: the queue goes on."""
        try:
            source = await asyncio.to_thread(resolve_track, track, self._library_root)
        except TrackRefused as exc:
            log.info("voice %s: %s", voice.guild_id, exc)
            self._report_end(voice, play_id, track, "failed")
            return
        audio: Path | AsyncIterator[bytes] = (
            source.path
            if isinstance(source, LibraryFile)
            else url_audio(self._media, source.url, allow_private=self._allow_private_media)
        )
        stream = await PcmStream.open(audio, start_s)
        await voice.player.play(Playing(play_id, track, stream, start_s))

    async def _listen(self, voice: Voice, names: list[str]) -> None:
        """Listen for `names` on the voice's connection (a new list replaces the old); none: stop."""
        current = voice.listener
        if current is not None and current.names == names:
            return
        voice.listener, voice.connection.on_voice = None, None
        if current is not None:
            await current.close()
        if names:
            listener = Listener(
                names, self._recognition, lambda user_id, text: self._heard(voice, user_id, text)
            )
            listener.start()
            voice.listener, voice.connection.on_voice = listener, listener.frame

    def _heard(self, voice: Voice, user_id: str, text: str) -> None:
        transcript = VoiceTranscript(
            guild_id=voice.guild_id, channel_id=voice.channel_id, user_id=user_id, content=text
        )
        envelope = dispatch.transcript_envelope(voice.bot.bot_id, transcript, datetime.now(UTC))
        self._in_background(self._published(voice, envelope))

    # joining and leaving

    async def join(self, bot: BotCredentials, guild_id: str, channel_id: str) -> Voice:
        """The bot's voice connection in `channel_id`, joined (or moved there) if it is not there yet."""
        key = (bot.bot_id, guild_id)
        voice = self.voices.get(key)
        if voice is not None and voice.channel_id == channel_id and voice.connection.ready:
            return voice
        server = await self._request_server(bot, guild_id, channel_id)
        if voice is None:
            voice = self._new_voice(bot, server)
        voice.channel_id = channel_id
        if not await voice.connection.open(server, CONNECT_TIMEOUT_S):
            raise VoiceFailed(f"channel_id: the voice server of channel {channel_id} did not become ready")
        return voice

    def _new_voice(self, bot: BotCredentials, server: VoiceServer) -> Voice:
        connection = VoiceConnection(self._http, self._gateway_url, self._connection_gone)
        voice = Voice(bot, server.guild_id, server.channel_id, connection, self._ended)
        voice.player.start()
        self.voices[(bot.bot_id, server.guild_id)] = voice
        return voice

    async def _shard(self, bot: BotCredentials, guild_id: str) -> GatewayShard:
        """The bot's ready shard for the guild: voice state updates go over it."""
        shards = self._fleet.shards_for(bot.bot_id, guild_id)
        if not shards or not await shards[0].wait_ready(SHARD_READY_S):
            raise VoiceFailed(f"bot {bot.bot_id} has no gateway connection for guild {guild_id}")
        return shards[0]

    async def _request_server(self, bot: BotCredentials, guild_id: str, channel_id: str) -> VoiceServer:
        """Ask to be in `channel_id` on the guild's shard; the voice server Discord assigns."""
        shard = await self._shard(bot, guild_id)
        key = (bot.bot_id, guild_id)
        joining = _Joining(channel_id, asyncio.get_running_loop().create_future())
        self._joining[key] = joining
        try:
            await shard.command(protocol.voice_state_payload(guild_id, channel_id))
            return await asyncio.wait_for(joining.done, JOIN_TIMEOUT_S)
        except TimeoutError:
            raise VoiceFailed(f"channel_id: Discord gave no voice server for channel {channel_id}") from None
        finally:
            if self._joining.get(key) is joining:
                del self._joining[key]

    async def leave(self, bot: BotCredentials, guild_id: str) -> None:
        voice = self.voices.pop((bot.bot_id, guild_id), None)
        if voice is not None:
            await self._close(voice, "stopped")
        await self._store.forget(bot.bot_id, guild_id)
        shard = await self._shard(bot, guild_id)
        await shard.command(protocol.voice_state_payload(guild_id, None))

    @staticmethod
    async def _close(voice: Voice, reason: EndReason | None) -> None:
        if voice.listener is not None:
            await voice.listener.close()
        await voice.player.close(reason)
        await voice.connection.close()

    def _connection_gone(self, connection: VoiceConnection, after: AfterClose) -> None:
        voice = next((v for v in self.voices.values() if v.connection is connection), None)
        if voice is not None:
            self._in_background(self._rejoin(voice) if after is AfterClose.REJOIN else self._drop(voice))

    async def _rejoin(self, voice: Voice) -> None:
        try:
            server = await self._request_server(voice.bot, voice.guild_id, voice.channel_id)
            if await voice.connection.open(server, CONNECT_TIMEOUT_S):
                return
        except (VoiceFailed, ConnectionError) as exc:
            log.info("voice %s/%s: rejoin failed: %s", voice.bot.bot_id, voice.guild_id, exc)
        await self._drop(voice)

    async def _drop(self, voice: Voice) -> None:
        """Discord will not have the bot in the channel: the voice ends, what played stopped."""
        if self.voices.get((voice.bot.bot_id, voice.guild_id)) is voice:
            del self.voices[(voice.bot.bot_id, voice.guild_id)]
            await self._close(voice, "stopped")
            await self._store.forget(voice.bot.bot_id, voice.guild_id)

    # the main gateway's dispatches

    def dispatched(self, bot: BotCredentials, event_type: str, data: dict[str, Any]) -> None:
        """VOICE_STATE_UPDATE (this bot's only) and VOICE_SERVER_UPDATE, as the bot's shard receives them."""
        guild_id = data.get("guild_id")
        if not isinstance(guild_id, str):
            return
        key = (bot.bot_id, guild_id)
        joining, voice = self._joining.get(key), self.voices.get(key)
        if event_type == "VOICE_STATE_UPDATE":
            if str(data.get("user_id")) != bot.bot_id:
                return
            channel_id = data.get("channel_id")
            if joining is not None and channel_id == joining.channel_id:
                joining.session_id = data.get("session_id")
            elif joining is None and voice is not None and channel_id is None:
                self._in_background(self._drop(voice))  # disconnected by a moderator, or the channel went
            elif joining is None and voice is not None and isinstance(channel_id, str):
                voice.channel_id = channel_id  # moved: the voice server update that follows reconnects
        elif joining is not None:
            joining.token, joining.endpoint = data.get("token"), data.get("endpoint")
        elif voice is not None and voice.connection.server is not None and data.get("endpoint"):
            moved = replace(
                voice.connection.server, token=str(data.get("token")), endpoint=str(data["endpoint"])
            )
            self._in_background(self._reopen(voice, moved))
        if joining is not None and not joining.done.done():
            server = joining.server(bot.bot_id, guild_id)
            if server is not None:
                joining.done.set_result(server)

    async def _reopen(self, voice: Voice, server: VoiceServer) -> None:
        if not await voice.connection.open(server, CONNECT_TIMEOUT_S):
            log.info("voice %s/%s: the new voice server did not answer", voice.bot.bot_id, voice.guild_id)

    # ownership

    async def restore(self, bot: BotCredentials) -> None:
        """A bot this runner took over: rejoin its channels and go on with what played, where it was."""
        for presence in await self._store.load(bot.bot_id):
            if (bot.bot_id, presence.guild_id) in self.voices:
                continue
            try:
                voice = await self.join(bot, presence.guild_id, presence.channel_id)
            except (VoiceFailed, ConnectionError) as exc:
                log.warning("voice %s/%s: not rejoined: %s", bot.bot_id, presence.guild_id, exc)
                continue
            voice.player.set_volume(presence.volume)
            if presence.paused:
                voice.player.pause()
            if presence.playing is not None:
                playing = presence.playing
                await self._play(voice, playing.play_id, playing.track, playing.position_s)
                if presence.paused:
                    voice.player.pause()
            log.info("voice %s/%s: rejoined %s", bot.bot_id, presence.guild_id, presence.channel_id)

    def restore_soon(self, bot: BotCredentials) -> None:
        self._in_background(self.restore(bot))

    async def release(self, bot_ids: Iterable[str]) -> None:
        """Bots going to another runner: their connections close without leaving, their state stays saved
        for the new owner, and nothing is reported ended."""
        gone = set(bot_ids)
        for key in [key for key in self.voices if key[0] in gone]:
            voice = self.voices.pop(key)
            await self._save(voice.bot.bot_id, [voice])
            await self._close(voice, None)

    async def close(self) -> None:
        await self.release({bot_id for bot_id, _ in self.voices})
        for task in list(self._background):
            task.cancel()
        self._recognition.close()

    # state and events

    async def run(self) -> None:
        """Save what plays every second: a new owner continues at most that far back."""
        while True:
            await asyncio.sleep(SAVE_INTERVAL_S)
            playing = [voice for voice in self.voices.values() if voice.player.track is not None]
            by_bot: dict[str, list[Voice]] = {}
            for voice in playing:
                by_bot.setdefault(voice.bot.bot_id, []).append(voice)
            for bot_id, voices in by_bot.items():
                await self._save(bot_id, voices)

    async def _save(self, bot_id: str, voices: Iterable[Voice]) -> None:
        await self._store.save(bot_id, [voice.presence() for voice in voices])

    def _ended(self, voice: Voice, playing: Playing, reason: EndReason) -> None:
        self._report_end(voice, playing.play_id, playing.track, reason)

    def _report_end(self, voice: Voice, play_id: str, track: str, reason: EndReason) -> None:
        end = VoiceTrackEnd(
            guild_id=voice.guild_id, channel_id=voice.channel_id, track=track[:200], reason=reason
        )
        envelope = dispatch.track_end_envelope(voice.bot.bot_id, end, play_id, datetime.now(UTC))
        self._in_background(self._publish_end(voice, envelope))

    async def _published(self, voice: Voice, envelope: EventEnvelope) -> None:
        try:
            await self._publish(envelope)
        except Exception:
            log.exception("voice %s: the %s event was not published", voice.guild_id, envelope.type)

    async def _publish_end(self, voice: Voice, envelope: EventEnvelope) -> None:
        await self._published(voice, envelope)
        if (voice.bot.bot_id, voice.guild_id) in self.voices:
            await self._save(voice.bot.bot_id, [voice])

    def _in_background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
