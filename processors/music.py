"""Music over one deployment's queue: the commands, the queue advancing when a track ends on the edge, and
leaving the voice channel after an idle time. Playback itself is voice actions the edge performs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from models.actions import Action, VoiceJoin, VoiceLeave, VoicePlay
from models.events import VoiceTrackEnd
from models.processor_state import MAX_QUEUE, MusicQueue
from processors.commands import Invocation
from processors.emit import Emitter, Say
from processors.outcome import Outcome, remember_applied

NOTHING_PLAYING = "Nothing is playing."
NOT_IN_VOICE = "Join a voice channel first: I play where you listen."
_TRACK_LIMIT = 200


@dataclass(frozen=True)
class VoicePresence:
    """Who is where in voice, as the guild directory knows it: the deployment's bot and the member asking."""

    bot_channel: str | None
    member_channel: str | None


def describe_queue(queue: MusicQueue) -> str:
    if queue.now_playing is None:
        return "The queue is empty."
    lines = [f"Now playing: {queue.now_playing}" + (" (paused)" if queue.paused else "")]
    if queue.queue:
        lines.append("Up next:")
        lines.extend(f"{position}. {track}" for position, track in enumerate(queue.queue, start=1))
    return "\n".join(lines)


def leave_actions(emit: Emitter, queue: MusicQueue, channel_id: str | None) -> list[Action]:
    """Stop what plays (`queue` as it was), then leave the channel: /stop, and the idle timer."""
    stop = [emit.action(VoicePlay, channel_id=channel_id, command="stop")] if queue.now_playing else []
    return [*stop, emit.action(VoiceLeave)]


def _play(current: MusicQueue, emit: Emitter, presence: VoicePresence, track: str) -> Outcome[MusicQueue]:
    """Start or queue a track in the member's voice channel, joining it first when the bot is elsewhere."""
    channel = presence.member_channel
    if channel is None:
        return Outcome(Say(NOT_IN_VOICE, ephemeral=True))
    playing = current.now_playing
    if playing is not None and presence.bot_channel not in (None, channel):
        return Outcome(
            Say(f"I am playing in <#{presence.bot_channel}>: join it to add tracks.", ephemeral=True)
        )
    applied = remember_applied(current.applied, emit.cause_id)
    if playing is not None:
        if len(current.queue) >= MAX_QUEUE:
            return Outcome(Say(f"The queue is full ({MAX_QUEUE} tracks).", ephemeral=True))
        queued = current.model_copy(update={"queue": [*current.queue, track], "applied": applied})
        return Outcome(Say(f"Queued: {track}", title="Music"), state=queued)
    join = [emit.action(VoiceJoin, channel_id=channel)] if presence.bot_channel != channel else []
    play = emit.action(VoicePlay, channel_id=channel, command="play", track=track, volume=current.volume)
    updated = current.model_copy(update={"now_playing": track, "paused": False, "applied": applied})
    return Outcome(Say(f"Playing: {track}", title="Music"), [*join, play], state=updated)


def handle_music(
    invocation: Invocation, queue: MusicQueue | None, emit: Emitter, presence: VoicePresence
) -> Outcome[MusicQueue]:
    current = queue or MusicQueue()
    if emit.cause_id in current.applied:
        return Outcome(None)  # a redelivered command was answered the first time
    name = invocation.name
    playing = current.now_playing
    channel = presence.bot_channel or presence.member_channel

    def control(command: str, say: str, changes: dict[str, object], track: str = "") -> Outcome[MusicQueue]:
        updated = current.model_copy(
            update={**changes, "applied": remember_applied(current.applied, emit.cause_id)}
        )
        volume = updated.volume if command in ("play", "volume") else None
        action = emit.action(VoicePlay, channel_id=channel, command=command, track=track, volume=volume)
        return Outcome(Say(say, title="Music"), [action], state=updated)

    if name == "play":
        return _play(current, emit, presence, invocation.text("query")[:_TRACK_LIMIT])
    if name == "queue":
        return Outcome(Say(describe_queue(current), title="Queue"))
    if name == "nowplaying":
        if playing is None:
            return Outcome(Say(NOTHING_PLAYING))
        return Outcome(
            Say(f"Now playing: {playing}" + (" (paused)" if current.paused else ""), title="Music")
        )
    if name == "volume":
        level = invocation.number("level")
        if level is None:
            return Outcome(Say(f"Volume: {current.volume}%"))
        if not 0 <= level <= 200:
            return Outcome(Say("The volume goes from 0 to 200.", ephemeral=True))
        return control("volume", f"Volume: {level}%", {"volume": level})
    if name == "stop":
        # Stopping also leaves, playing or not: the member asked the bot out of the channel.
        stopped = current.model_copy(
            update={
                "now_playing": None,
                "queue": [],
                "paused": False,
                "applied": remember_applied(current.applied, emit.cause_id),
            }
        )
        actions = leave_actions(emit, current, channel) if presence.bot_channel or playing else []
        return Outcome(Say("Stopped, cleared the queue and left.", title="Music"), actions, state=stopped)
    if playing is None:
        return Outcome(Say(NOTHING_PLAYING))
    if name == "skip":
        if current.queue:
            following, *rest = current.queue
            # Playing the next track cuts the current one (its end comes back as skipped).
            changes = {"now_playing": following, "queue": rest, "paused": False}
            return control("play", f"Skipped: {playing}. Playing: {following}", changes, following)
        return control(
            "skip", f"Skipped: {playing}. The queue is empty.", {"now_playing": None, "paused": False}
        )
    if name == "pause":
        if current.paused:
            return Outcome(Say(f"Already paused: {playing}"))
        return control("pause", f"Paused: {playing}", {"paused": True})
    if name == "resume":
        if not current.paused:
            return Outcome(Say(f"Not paused: {playing}"))
        return control("resume", f"Resumed: {playing}", {"paused": False})
    raise ValueError(f"not a music command: {name}")


def track_ended(queue: MusicQueue | None, end: VoiceTrackEnd, emit: Emitter) -> Outcome[MusicQueue]:
    """The queue after the edge reports a track's end: a finished or failed track gives way to the next.

    A track cut by /skip or /stop was already replaced by the command, and an end that is not of the track
    now playing is late news: neither changes anything, so each end moves the queue at most once. The track
    now playing stopped means the player left without /stop: the queue is cleared."""
    if queue is None or emit.cause_id in queue.applied:
        return Outcome(None)
    if end.reason == "skipped" or end.track != queue.now_playing:
        return Outcome(None)
    applied = remember_applied(queue.applied, emit.cause_id)
    if end.reason == "stopped":
        # Stopped while the queue still had it: not /stop but a leave (idle, or a moderator's disconnect).
        cleared = {"now_playing": None, "queue": [], "paused": False, "applied": applied}
        return Outcome(None, state=queue.model_copy(update=cleared))
    if not queue.queue:
        return Outcome(
            None, state=queue.model_copy(update={"now_playing": None, "paused": False, "applied": applied})
        )
    following, *rest = queue.queue
    play = emit.action(
        VoicePlay, channel_id=end.channel_id, command="play", track=following, volume=queue.volume
    )
    updated = queue.model_copy(
        update={"now_playing": following, "queue": rest, "paused": False, "applied": applied}
    )
    return Outcome(None, [play], state=updated)


@dataclass(frozen=True)
class IdleCheck:
    """The idle timer's verdict on one player: since when it is idle (None: it is not) and whether it leaves
    now (then it is idle no more)."""

    since: datetime | None
    leave: bool = False


def check_idle(
    since: datetime | None,
    queue: MusicQueue,
    bot_channel: str | None,
    company: bool,
    now: datetime,
    idle_leave_s: int,
) -> IdleCheck:
    """Whether a player in `bot_channel` (None: not in voice), idle `since` as last seen, leaves at `now`:
    once its queue has been empty, or nobody else (`company`) has been in the channel, for `idle_leave_s`.
    The timer records when the idleness began, so the wait survives a restarted worker."""
    idle = bot_channel is not None and (queue.now_playing is None or not company)
    if not idle:
        return IdleCheck(None)
    if since is None:
        return IdleCheck(now)
    if now - since < timedelta(seconds=idle_leave_s):
        return IdleCheck(since)
    return IdleCheck(None, leave=True)
