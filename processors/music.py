"""Music commands over one deployment's queue. Playback itself is a voice action for the edge's audio node."""

from __future__ import annotations

from models.actions import VoicePlay
from models.processor_state import MAX_QUEUE, MusicQueue
from processors.commands import Invocation
from processors.emit import Emitter, Say
from processors.outcome import Outcome, remember_applied

NOTHING_PLAYING = "Nothing is playing."
_TRACK_LIMIT = 200


def describe_queue(queue: MusicQueue) -> str:
    if queue.now_playing is None:
        return "The queue is empty."
    lines = [f"Now playing: {queue.now_playing}" + (" (paused)" if queue.paused else "")]
    if queue.queue:
        lines.append("Up next:")
        lines.extend(f"{position}. {track}" for position, track in enumerate(queue.queue, start=1))
    return "\n".join(lines)


def handle_music(
    invocation: Invocation, queue: MusicQueue | None, emit: Emitter, voice_channel_id: str | None
) -> Outcome[MusicQueue]:
    current = queue or MusicQueue()
    if emit.cause_id in current.applied:
        return Outcome(None)  # a redelivered command was answered the first time
    name = invocation.name
    playing = current.now_playing

    def play(command: str, say: str, changes: dict[str, object], track: str = "") -> Outcome[MusicQueue]:
        updated = current.model_copy(
            update={**changes, "applied": remember_applied(current.applied, emit.cause_id)}
        )
        volume = updated.volume if command == "volume" else None
        action = emit.action(
            VoicePlay, channel_id=voice_channel_id, command=command, track=track, volume=volume
        )
        return Outcome(Say(say, title="Music"), [action], state=updated)

    if name == "play":
        track = invocation.text("query")[:_TRACK_LIMIT]
        if playing is None:
            return play("play", f"Playing: {track}", {"now_playing": track, "paused": False}, track)
        if len(current.queue) >= MAX_QUEUE:
            return Outcome(Say(f"The queue is full ({MAX_QUEUE} tracks).", ephemeral=True))
        updated = current.model_copy(
            update={
                "queue": [*current.queue, track],
                "applied": remember_applied(current.applied, emit.cause_id),
            }
        )
        return Outcome(Say(f"Queued: {track}", title="Music"), state=updated)
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
        return play("volume", f"Volume: {level}%", {"volume": level})
    if playing is None:
        return Outcome(Say(NOTHING_PLAYING))
    if name == "skip":
        if current.queue:
            following, *rest = current.queue
            changes = {"now_playing": following, "queue": rest, "paused": False}
            return play("skip", f"Skipped: {playing}. Playing: {following}", changes, following)
        return play(
            "stop", f"Skipped: {playing}. The queue is empty.", {"now_playing": None, "paused": False}
        )
    if name == "stop":
        return play(
            "stop", "Stopped and cleared the queue.", {"now_playing": None, "queue": [], "paused": False}
        )
    if name == "pause":
        if current.paused:
            return Outcome(Say(f"Already paused: {playing}"))
        return play("pause", f"Paused: {playing}", {"paused": True})
    if name == "resume":
        if not current.paused:
            return Outcome(Say(f"Not paused: {playing}"))
        return play("resume", f"Resumed: {playing}", {"paused": False})
    raise ValueError(f"not a music command: {name}")
