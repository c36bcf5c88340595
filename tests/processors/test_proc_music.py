"""Music: the commands over the queue, the queue advancing on the edge's track ends (each end acted on once),
and the player leaving its voice channel when idle; as pure decisions and through the engine."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from typing import Any, Literal

from models.actions import Action, InteractionResponse, VoiceJoin, VoiceLeave, VoicePlay
from models.agent import AgentMode
from models.discord import DiscordUser
from models.events import VOICE_TRACK_END, VoiceTrackEnd
from models.processor_state import MusicQueue
from models.table_keys import MusicKey
from processors.commands import Invocation
from processors.emit import Emitter, InteractionOrigin, Say
from processors.engine import Engine, Tables
from processors.music import NOT_IN_VOICE, IdleCheck, VoicePresence, check_idle, handle_music, track_ended
from tests.processors.factories import T0, agent_with, deployed, envelope, routing, snowflake, user

GUILD, CHANNEL, BOT = snowflake(), snowflake(), snowflake()
LOUNGE, STAGE = snowflake(), snowflake()
MEMBER = snowflake()
IN_LOUNGE = VoicePresence(bot_channel=None, member_channel=LOUNGE)
DJ = deployed(
    agent_with(
        AgentMode.bare,
        enabled_commands=["play", "queue", "skip", "stop", "pause", "resume", "volume"],
        music={"idle_leave_s": 60},
    ),
    guild_id=GUILD,
    bot_id=BOT,
)


def emitter(event: str | None = None) -> Emitter:
    return Emitter(event or f"evt-{snowflake()}", DJ, GUILD, MEMBER)


def music(
    name: str,
    queue: MusicQueue | None,
    emit: Emitter | None = None,
    presence: VoicePresence = IN_LOUNGE,
    **options: Any,
):
    invocation = Invocation(
        name=name,
        options=options,
        user=DiscordUser(id=MEMBER, username="u"),
        channel_id=CHANNEL,
        guild_id=GUILD,
        permissions=0,
        role_ids=(),
        at=T0,
        origin=InteractionOrigin(snowflake(), "tok"),
    )
    outcome = handle_music(invocation, queue, emit or emitter(), presence)
    return outcome, outcome.state or queue


def voice(actions: list[Action]) -> list[tuple[str, ...]]:
    """The voice actions in order: ("join", channel), ("play", command, track), ("leave",)."""
    shown: list[tuple[str, ...]] = []
    for action in actions:
        if isinstance(action, VoiceJoin):
            shown.append(("join", action.channel_id))
        elif isinstance(action, VoicePlay):
            shown.append(("play", action.command, action.track))
        elif isinstance(action, VoiceLeave):
            shown.append(("leave",))
    return shown


def ended(track: str, reason: Literal["finished", "skipped", "stopped", "failed"]) -> VoiceTrackEnd:
    return VoiceTrackEnd(guild_id=GUILD, channel_id=LOUNGE, track=track, reason=reason)


# Commands -------------------------------------------------------------------------------------------------


def test_play_joins_the_members_channel_then_plays_and_queues_the_next() -> None:
    first, queue = music("play", None, query="lofi")
    assert first.say == Say("Playing: lofi", title="Music")
    assert voice(first.actions) == [("join", LOUNGE), ("play", "play", "lofi")]
    assert all(a.channel_id == LOUNGE for a in first.actions if isinstance(a, VoicePlay))
    second, queue = music("play", queue, presence=VoicePresence(LOUNGE, LOUNGE), query="jazz")
    assert second.say is not None and second.say.text == "Queued: jazz" and second.actions == []
    assert queue is not None and queue.now_playing == "lofi" and queue.queue == ["jazz"]


def test_play_where_the_bot_already_is_does_not_join_again() -> None:
    played, _ = music("play", None, presence=VoicePresence(LOUNGE, LOUNGE), query="lofi")
    assert voice(played.actions) == [("play", "play", "lofi")]


def test_play_needs_the_member_in_voice() -> None:
    refused, queue = music("play", None, presence=VoicePresence(None, None), query="lofi")
    assert refused.say == Say(NOT_IN_VOICE, ephemeral=True)
    assert refused.actions == [] and queue is None


def test_play_from_another_channel_while_playing_is_refused() -> None:
    queue = MusicQueue(now_playing="lofi")
    refused, after = music("play", queue, presence=VoicePresence(STAGE, LOUNGE), query="jazz")
    assert refused.say is not None and refused.say.ephemeral and f"<#{STAGE}>" in refused.say.text
    assert refused.actions == [] and after == queue


def test_skip_advances_and_stops_at_the_end() -> None:
    queue = MusicQueue(now_playing="a", queue=["b", "c"])
    skipped, queue = music("skip", queue)
    assert skipped.say is not None and skipped.say.text == "Skipped: a. Playing: b"
    assert voice(skipped.actions) == [("play", "play", "b")]
    assert queue is not None and (queue.now_playing, queue.queue) == ("b", ["c"])
    listing, _ = music("queue", queue)
    assert listing.say is not None and listing.say.text == "Now playing: b\nUp next:\n1. c"
    _, queue = music("skip", queue)
    last, queue = music("skip", queue)
    assert last.say is not None and last.say.text == "Skipped: c. The queue is empty."
    assert voice(last.actions) == [("play", "skip", "")]
    nothing, _ = music("skip", queue)
    assert nothing.say is not None and nothing.say.text == "Nothing is playing." and nothing.state is None


def test_pause_resume_volume() -> None:
    queue = MusicQueue(now_playing="a", queue=["b"])
    paused, queue = music("pause", queue)
    assert voice(paused.actions) == [("play", "pause", "")]
    again, _ = music("pause", queue)
    assert (
        queue is not None and queue.paused and again.say is not None and again.say.text.startswith("Already")
    )
    now, _ = music("nowplaying", queue)
    assert now.say is not None and now.say.text == "Now playing: a (paused)"
    resumed, queue = music("resume", queue)
    assert voice(resumed.actions) == [("play", "resume", "")] and queue is not None and not queue.paused
    loud, queue = music("volume", queue, level=150)
    assert queue is not None and queue.volume == 150
    assert [(a.command, a.volume) for a in loud.actions if isinstance(a, VoicePlay)] == [("volume", 150)]
    too_loud, _ = music("volume", queue, level=300)
    assert too_loud.state is None and too_loud.say is not None and too_loud.say.ephemeral


def test_stop_clears_the_queue_and_leaves() -> None:
    queue = MusicQueue(now_playing="a", queue=["b"], paused=True)
    stopped, queue = music("stop", queue, presence=VoicePresence(LOUNGE, LOUNGE))
    assert voice(stopped.actions) == [("play", "stop", ""), ("leave",)]
    assert queue is not None and (queue.now_playing, queue.queue, queue.paused) == (None, [], False)


def test_a_redelivered_play_is_applied_once() -> None:
    _, queue = music("play", None, emitter("evt-same"), query="lofi")
    _, queue = music("play", queue, emitter("evt-2"), query="jazz")
    replay, after = music("play", queue, emitter("evt-2"), query="jazz")
    assert replay.say is None and replay.actions == [] and after == queue


# Track ends ---------------------------------------------------------------------------------------------


def test_a_finished_or_failed_track_gives_way_to_the_next() -> None:
    queue = MusicQueue(now_playing="a", queue=["b", "c"], volume=80)
    after_a = track_ended(queue, ended("a", "finished"), emitter())
    assert after_a.say is None and voice(after_a.actions) == [("play", "play", "b")]
    [play] = after_a.actions
    assert isinstance(play, VoicePlay) and (play.channel_id, play.volume) == (LOUNGE, 80)
    assert after_a.state is not None and (after_a.state.now_playing, after_a.state.queue) == ("b", ["c"])
    after_b = track_ended(after_a.state, ended("b", "failed"), emitter())
    assert after_b.state is not None and voice(after_b.actions) == [("play", "play", "c")]
    last = track_ended(after_b.state, ended("c", "finished"), emitter())
    assert last.actions == [] and last.state is not None and last.state.now_playing is None


def test_each_track_end_moves_the_queue_once() -> None:
    queue = MusicQueue(now_playing="a", queue=["b", "c"])
    emit = emitter("evt-end")
    first = track_ended(queue, ended("a", "finished"), emit)
    assert first.state is not None
    # The same event again (a redelivery) changes nothing.
    replayed = track_ended(first.state, ended("a", "finished"), emitter("evt-end"))
    assert replayed.state is None and replayed.actions == []
    # The end of a track /skip already replaced, and late news of an earlier track, change nothing either.
    assert track_ended(first.state, ended("b", "skipped"), emitter()).state is None
    assert track_ended(first.state, ended("a", "finished"), emitter()).state is None
    assert track_ended(first.state, ended("a", "stopped"), emitter()).state is None


# Idle -----------------------------------------------------------------------------------------------------


def test_an_empty_queue_leaves_after_the_idle_time() -> None:
    empty = MusicQueue()
    started = check_idle(None, empty, LOUNGE, True, T0, 60)
    assert started == IdleCheck(T0)
    assert check_idle(T0, empty, LOUNGE, True, T0 + timedelta(seconds=59), 60) == IdleCheck(T0)
    assert check_idle(T0, empty, LOUNGE, True, T0 + timedelta(seconds=60), 60) == IdleCheck(None, leave=True)


def test_alone_in_the_channel_counts_as_idle_and_company_ends_it() -> None:
    playing = MusicQueue(now_playing="a", queue=["b"])
    assert check_idle(None, playing, LOUNGE, True, T0, 60) == IdleCheck(None)
    assert check_idle(None, playing, LOUNGE, False, T0, 60) == IdleCheck(T0)
    assert check_idle(T0, playing, LOUNGE, True, T0 + timedelta(seconds=30), 60) == IdleCheck(None)
    left = check_idle(T0, playing, LOUNGE, False, T0 + timedelta(minutes=5), 60)
    assert left.leave


def test_a_player_out_of_voice_is_never_idle() -> None:
    assert check_idle(None, MusicQueue(), None, False, T0, 60) == IdleCheck(None)
    assert check_idle(T0, MusicQueue(), None, False, T0 + timedelta(hours=1), 60) == IdleCheck(None)


def test_a_player_stopped_without_stop_clears_its_queue() -> None:
    queue = MusicQueue(now_playing="a", queue=["b"], paused=True)
    left = track_ended(queue, ended("a", "stopped"), emitter())
    assert left.actions == [] and left.state is not None
    assert (left.state.now_playing, left.state.queue, left.state.paused) == (None, [], False)


# Through the engine ---------------------------------------------------------------------------------------


def engine_with_dj() -> Engine:
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    assert engine.apply_routing(routing(GUILD, DJ))
    channels = [
        {"id": CHANNEL, "name": "general", "type": 0, "position": 0},
        {"id": LOUNGE, "name": "lounge", "type": 2, "position": 1},
    ]
    created = {"id": GUILD, "name": "g", "channels": channels, "roles": [], "voice_states": [], "members": []}
    engine.handle_event(envelope("GUILD_CREATE", created, bot_id=BOT, guild_id=GUILD))
    return engine


def in_voice(engine: Engine, user_id: str, channel_id: str | None) -> None:
    data = {"guild_id": GUILD, "user_id": user_id, "channel_id": channel_id, "session_id": "s"}
    engine.handle_event(envelope("VOICE_STATE_UPDATE", data, bot_id=BOT, guild_id=GUILD))


def play(engine: Engine, track: str) -> list[Action]:
    data = {
        "id": snowflake(),
        "application_id": BOT,
        "type": 2,
        "token": "tok",
        "guild_id": GUILD,
        "channel_id": CHANNEL,
        "member": {"user": user(MEMBER, "kai"), "roles": [], "permissions": "0"},
        "data": {
            "id": snowflake(),
            "name": "play",
            "type": 1,
            "options": [{"name": "query", "type": 3, "value": track}],
        },
    }
    return engine.handle_event(
        envelope("INTERACTION_CREATE", data, bot_id=BOT, guild_id=GUILD, channel_id=CHANNEL)
    ).actions


def track_end(engine: Engine, track: str) -> list[Action]:
    data = ended(track, "finished").model_dump(mode="json")
    return engine.handle_event(envelope(VOICE_TRACK_END, data, bot_id=BOT, guild_id=GUILD)).actions


def test_the_engine_plays_advances_on_track_end_and_leaves_when_idle() -> None:
    engine = engine_with_dj()
    refused = play(engine, "lofi")
    assert [a.content for a in refused if isinstance(a, InteractionResponse)] == [NOT_IN_VOICE]
    in_voice(engine, MEMBER, LOUNGE)
    assert voice(play(engine, "lofi")) == [("join", LOUNGE), ("play", "play", "lofi")]
    in_voice(engine, BOT, LOUNGE)
    assert voice(play(engine, "jazz")) == []
    assert voice(track_end(engine, "lofi")) == [("play", "play", "jazz")]
    assert voice(track_end(engine, "jazz")) == []
    stored = engine.tables.music[MusicKey(GUILD, DJ.deployment.deployment_id).encode()]
    assert stored.now_playing is None
    assert engine.leave_idle_voice(GUILD, T0).actions == []
    assert engine.leave_idle_voice(GUILD, T0 + timedelta(seconds=30)).actions == []
    assert voice(engine.leave_idle_voice(GUILD, T0 + timedelta(seconds=61)).actions) == [("leave",)]


def test_the_engine_leaves_a_channel_everyone_else_left() -> None:
    engine = engine_with_dj()
    in_voice(engine, MEMBER, LOUNGE)
    play(engine, "lofi")
    in_voice(engine, BOT, LOUNGE)
    assert engine.leave_idle_voice(GUILD, T0).actions == []
    in_voice(engine, MEMBER, None)
    engine.leave_idle_voice(GUILD, T0 + timedelta(seconds=10))
    leaving = engine.leave_idle_voice(GUILD, T0 + timedelta(seconds=70)).actions
    assert voice(leaving) == [("play", "stop", ""), ("leave",)]
    assert all(a.guild_id == GUILD and a.bot_id == BOT for a in leaving)
    # Until the edge reports the bot out of voice, the next ticks start a new wait, not a second leave.
    assert engine.leave_idle_voice(GUILD, T0 + timedelta(seconds=71)).actions == []
    # The edge stops the track as it leaves: that end clears the queue.
    data = VoiceTrackEnd(guild_id=GUILD, channel_id=LOUNGE, track="lofi", reason="stopped").model_dump(
        mode="json"
    )
    engine.handle_event(envelope(VOICE_TRACK_END, data, bot_id=BOT, guild_id=GUILD))
    stored = engine.tables.music[MusicKey(GUILD, DJ.deployment.deployment_id).encode()]
    assert stored.now_playing is None
    in_voice(engine, BOT, None)
    engine.leave_idle_voice(GUILD, T0 + timedelta(seconds=72))
    assert engine.tables.voice_idle == {}
