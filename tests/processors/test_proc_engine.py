"""The engine end to end over in-memory tables: one event in, actions, decisions, audits and inference
requests out, with the state it leaves for the next event."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from models.actions import (
    AnswerInChannel,
    Ban,
    DeleteMessage,
    InteractionResponse,
    Reply,
    SendMessage,
    Timeout,
    VoicePlay,
)
from models.agent import AgentMode
from models.decisions import DecisionReason
from models.events import partition_key
from models.permissions import BAN_MEMBERS
from models.table_keys import ContextKey, DirectoryKey, RelationshipKey, RoutingKey
from models.tiers import InferenceLane, Tier
from processors.context import PENDING_MESSAGE_ID
from processors.engine import Engine, MalformedEvent, Tables
from processors.prompt import PromptFit, max_tokens_for
from processors.traits import reply_tokens
from streams.catalog import DISCORD_ACTIONS
from streams.sealing import open_payload
from tests.data_keys import MemoryDataKeys
from tests.processors.factories import (
    T0,
    agent_with,
    deployed,
    envelope,
    guild_create,
    interaction_data,
    luna,
    message_data,
    result_of,
    routing,
    snowflake,
    user,
)

GUILD, GENERAL, ANIME = snowflake(), snowflake(), snowflake()
MUSIC_BOT, MOD_BOT, LUNA_BOT = snowflake(), snowflake(), snowflake()
OWNER, MOD_ROLE = snowflake(), snowflake()
KAI, MIA = user(snowflake(), "kai"), user(snowflake(), "mia")


def new_tables() -> Tables:
    return Tables(*({} for _ in fields(Tables)))


@pytest.fixture
def engine() -> Engine:
    engine = Engine(new_tables())
    music = deployed(agent_with(AgentMode.bare), guild_id=GUILD, bot_id=MUSIC_BOT)
    moderation = agent_with(
        AgentMode.enhanced,
        automod={
            "spam": {"max_messages": 5, "window_s": 5, "actions": ["timeout"], "timeout_s": 300},
            "links": {"enabled": True, "allow_domains": ["youtube.com"]},
        },
    )
    mod = deployed(moderation, guild_id=GUILD, bot_id=MOD_BOT)
    companion = deployed(luna(), guild_id=GUILD, bot_id=LUNA_BOT, tier=Tier.business)
    assert engine.apply_routing(routing(GUILD, music, mod, companion))
    channels = {GENERAL: "general", ANIME: "anime"}
    created = guild_create(GUILD, owner_id=OWNER, channels=channels, roles={MOD_ROLE: BAN_MEMBERS})
    for bot in (MUSIC_BOT, MOD_BOT, LUNA_BOT):
        engine.handle_event(envelope("GUILD_CREATE", created, bot_id=bot, guild_id=GUILD))
    return engine


def say(
    engine: Engine, bot: str, author: dict[str, Any], content: str, *, at=T0, channel=GENERAL, **extra: Any
):
    data = message_data(guild_id=GUILD, channel_id=channel, author=author, content=content, at=at, **extra)
    return engine.handle_event(
        envelope("MESSAGE_CREATE", data, bot_id=bot, guild_id=GUILD, channel_id=channel, at=at)
    )


def slash(
    engine: Engine, bot: str, name: str, options: list[dict[str, Any]] | None = None, permissions: int = 0
):
    data = interaction_data(
        application_id=bot,
        guild_id=GUILD,
        channel_id=GENERAL,
        invoker=KAI,
        name=name,
        options=options,
        permissions=permissions,
    )
    return engine.handle_event(
        envelope("INTERACTION_CREATE", data, bot_id=bot, guild_id=GUILD, channel_id=GENERAL)
    )


def texts(outputs) -> list[str]:
    return [a.content for a in outputs.actions if isinstance(a, Reply | InteractionResponse | SendMessage)]


def test_play_by_prefix_and_by_slash_command(engine: Engine) -> None:
    lounge = snowflake()
    voice = {"guild_id": GUILD, "user_id": KAI["id"], "channel_id": lounge, "session_id": "s"}
    engine.handle_event(envelope("VOICE_STATE_UPDATE", voice, bot_id=MUSIC_BOT, guild_id=GUILD))
    first = say(engine, MUSIC_BOT, KAI, "!play lofi")
    assert texts(first) == ["Playing: lofi"]
    reply = next(a for a in first.actions if isinstance(a, Reply))
    assert reply.bot_id == MUSIC_BOT and reply.channel_id == GENERAL
    assert [a.track for a in first.actions if isinstance(a, VoicePlay)] == ["lofi"]
    second = slash(engine, MUSIC_BOT, "play", [{"name": "query", "type": 3, "value": "jazz"}])
    [response] = second.actions
    assert isinstance(response, InteractionResponse) and response.content == "Queued: jazz"
    assert texts(slash(engine, MUSIC_BOT, "skip")) == ["Skipped: lofi. Playing: jazz"]
    assert texts(slash(engine, MUSIC_BOT, "queue")) == ["Now playing: jazz"]
    # Not in the bare template's enabled commands: refused, not performed.
    [refused] = slash(engine, MUSIC_BOT, "pause").actions
    assert isinstance(refused, InteractionResponse) and refused.ephemeral and "not enabled" in refused.content
    # A prefix command the agent does not have is ordinary chat.
    assert not say(engine, MUSIC_BOT, KAI, "!pause")


async def test_a_command_answer_is_about_its_invoker_and_sealed_under_their_key(engine: Engine) -> None:
    lounge = snowflake()
    voice = {"guild_id": GUILD, "user_id": KAI["id"], "channel_id": lounge, "session_id": "s"}
    engine.handle_event(envelope("VOICE_STATE_UPDATE", voice, bot_id=MUSIC_BOT, guild_id=GUILD))
    by_prefix = say(engine, MUSIC_BOT, KAI, "!play lofi")
    by_slash = slash(engine, MUSIC_BOT, "play", [{"name": "query", "type": 3, "value": "jazz"}])
    refused = slash(engine, MUSIC_BOT, "pause")
    actions = [*by_prefix.actions, *by_slash.actions, *refused.actions]
    assert {a.kind for a in actions} == {"reply", "voice_join", "voice_play", "interaction_response"}
    assert {a.about_user_id for a in actions} == {KAI["id"]}
    keys = MemoryDataKeys()
    [(_, _, raw)] = await by_slash.records(GUILD, keys)
    # The answer's words and its member travel sealed; the interaction it answers stays clear.
    assert b"jazz" not in raw and KAI["id"].encode() not in raw
    assert by_slash.actions[0].interaction_id.encode() in raw
    response = DISCORD_ACTIONS.codec.decode(raw)
    assert await open_payload(response, DISCORD_ACTIONS.sealing, keys) == by_slash.actions[0]


def test_no_ai_agent_never_requests_inference(engine: Engine) -> None:
    out = say(
        engine, MUSIC_BOT, KAI, f"<@{MUSIC_BOT}> can you talk?", mentions=[user(MUSIC_BOT, "dj", bot=True)]
    )
    assert out.requests == []
    assert [(d.reason, d.respond) for d in out.decisions] == [(DecisionReason.ai_disabled, False)]
    assert not say(engine, MUSIC_BOT, KAI, "just chatting").decisions  # not addressed: nothing to record


def test_mentioning_luna_requests_inference_on_the_tier_lane(engine: Engine) -> None:
    out = say(
        engine,
        LUNA_BOT,
        KAI,
        f"<@{LUNA_BOT}> hi Luna, how are you?",
        mentions=[user(LUNA_BOT, "luna", bot=True)],
    )
    [decision] = out.decisions
    assert decision.reason is DecisionReason.mentioned and decision.respond
    [request] = out.requests
    assert request.lane is InferenceLane.premium and request.tier is Tier.business
    assert request.model == "gpt-4-turbo" and request.target.bot_id == LUNA_BOT
    assert request.messages[-1].role == "user" and "how are you" in request.messages[-1].content
    relationship = engine.tables.relationships[
        RelationshipKey(GUILD, decision.deployment_id, KAI["id"]).encode()
    ]
    assert relationship.interaction_count == 1


def test_luna_stays_out_of_channels_she_is_not_in(engine: Engine) -> None:
    elsewhere = snowflake()
    engine.handle_event(
        envelope(
            "CHANNEL_CREATE", {"id": elsewhere, "name": "memes", "type": 0}, bot_id=LUNA_BOT, guild_id=GUILD
        )
    )
    out = say(
        engine,
        LUNA_BOT,
        KAI,
        f"<@{LUNA_BOT}> hi",
        channel=elsewhere,
        mentions=[user(LUNA_BOT, "l", bot=True)],
    )
    assert not out


def test_replay_on_fresh_state_makes_identical_decisions(engine: Engine) -> None:
    events = []
    for n in range(30):
        at = T0 + timedelta(seconds=n)
        content = f"anime talk {n}" if n % 3 else f"<@{LUNA_BOT}> hi {n}"
        mentions = [] if n % 3 else [user(LUNA_BOT, "luna", bot=True)]
        author = KAI if n % 2 else MIA
        data = message_data(
            guild_id=GUILD, channel_id=ANIME, author=author, content=content, at=at, mentions=mentions
        )
        events.append(
            envelope("MESSAGE_CREATE", data, bot_id=LUNA_BOT, guild_id=GUILD, channel_id=ANIME, at=at)
        )
    first = [d.model_dump(exclude={"decided_at"}) for e in events for d in engine.handle_event(e).decisions]
    replayed = Engine(new_tables())
    replayed.apply_routing(engine.tables.routing[RoutingKey(GUILD).encode()])
    directory_key = DirectoryKey(GUILD).encode()
    replayed.tables.directory[directory_key] = engine.tables.directory[directory_key]
    second = [
        d.model_dump(exclude={"decided_at"}) for e in events for d in replayed.handle_event(e).decisions
    ]
    assert first == second and len(first) == 30
    # Mentions and interest matches, whose dice really were rolled: each records the chance it was decided
    # at, below certainty. (A miss is not certain to occur: talk raises the speakers' affinity, and with it
    # the chance of an answer.)
    assert {d["reason"] for d in first} >= {DecisionReason.mentioned, DecisionReason.interest_match}
    chances = [d["probability"] for d in first if d["reason"] == DecisionReason.interest_match]
    assert chances and all(0 < chance < 1 for chance in chances)


def test_spammer_is_timed_out_at_the_configured_rate(engine: Engine) -> None:
    outs = [say(engine, MOD_BOT, MIA, f"spam {n}", at=T0 + timedelta(milliseconds=300 * n)) for n in range(6)]
    assert [bool(o.actions) for o in outs] == [False] * 5 + [True]
    [timeout] = outs[-1].actions
    assert isinstance(timeout, Timeout) and timeout.user_id == MIA["id"] and timeout.duration_s == 300
    [audit] = outs[-1].audits
    assert (audit.rule, audit.source, audit.actions) == ("spam", "automod", ["timeout"])


def test_links_are_deleted_and_the_message_goes_no_further(engine: Engine) -> None:
    out = say(engine, MOD_BOT, MIA, "free nitro https://nitro.example/claim")
    assert [type(a) for a in out.actions][:1] == [DeleteMessage]
    assert [a.rule for a in out.audits] == ["links"]
    owner = say(engine, MOD_BOT, user(OWNER, "owner"), "https://anything.example")
    assert not owner.actions  # the owner is exempt


def test_prefix_ban_uses_the_members_roles(engine: Engine) -> None:
    target = snowflake()
    refused = say(engine, MOD_BOT, KAI, f"!ban <@{target}> raid")
    assert not [a for a in refused.actions if isinstance(a, Ban)]
    assert refused.audits == []
    allowed = say(engine, MOD_BOT, MIA, f"!ban <@{target}> raid", roles=[MOD_ROLE])
    [ban] = [a for a in allowed.actions if isinstance(a, Ban)]
    assert ban.user_id == target and ban.reason == "raid"
    assert [a.moderator_id for a in allowed.audits] == [MIA["id"]]
    # Told only once Discord confirms: no reply now, a report the gateway sends after the ban, in the
    # embed style of the mod template, as a reply to the command.
    assert not [a for a in allowed.actions if isinstance(a, Reply)]
    assert ban.report is not None and ban.report.done == f"Banned <@{target}>: raid"
    assert ban.report.failed == f"Could not ban <@{target}>" and ban.report.embed_color is not None
    assert isinstance(ban.report.answer, AnswerInChannel) and ban.report.answer.message_id is not None


def test_slash_ban_uses_the_interaction_permissions(engine: Engine) -> None:
    target = snowflake()
    option = [{"name": "user", "type": 6, "value": target}]
    assert not [a for a in slash(engine, MOD_BOT, "ban", option).actions if isinstance(a, Ban)]
    assert [
        a
        for a in slash(engine, MOD_BOT, "ban", option, permissions=BAN_MEMBERS).actions
        if isinstance(a, Ban)
    ]


def test_inference_result_becomes_a_reply_and_joins_the_conversation(engine: Engine) -> None:
    mention = [user(LUNA_BOT, "luna", bot=True)]
    out = say(engine, LUNA_BOT, KAI, f"<@{LUNA_BOT}> hey", mentions=mention)
    [request] = out.requests
    result = result_of(request, "Hiii Kai! I'm great")
    reply = engine.handle_result(result, GUILD)
    sent = [a for a in reply.actions if isinstance(a, Reply | SendMessage)]
    assert sent and all(a.bot_id == LUNA_BOT for a in sent)
    context = engine.tables.context[ContextKey(GUILD, GENERAL).encode()]
    assert (
        context.messages[-1].message_id == PENDING_MESSAGE_ID and context.messages[-1].author_id == LUNA_BOT
    )
    # Her own message then arrives from Discord and replaces the placeholder.
    own = say(
        engine, LUNA_BOT, user(LUNA_BOT, "luna", bot=True), sent[0].content, at=T0 + timedelta(seconds=2)
    )
    assert [d.reason for d in own.decisions] == [DecisionReason.own_message] and not own.requests
    assert PENDING_MESSAGE_ID not in [
        m.message_id for m in engine.tables.context[ContextKey(GUILD, GENERAL).encode()].messages
    ]
    assert engine.handle_result(result.model_copy(update={"deployment_id": uuid4()}), GUILD).actions == []


def test_with_the_small_fit_the_request_is_small_and_the_reply_cleaned(engine: Engine) -> None:
    engine.fit = PromptFit.small
    mention = [user(LUNA_BOT, "luna", bot=True)]
    asked = f"<@{LUNA_BOT}> ranked tonight?"
    [request] = say(engine, LUNA_BOT, KAI, asked, mentions=mention).requests
    # Her traits lengthen the small budget within their bounds; it stays far below the full one.
    traits = luna().character.personality  # type: ignore[union-attr]
    assert request.max_tokens == reply_tokens(max_tokens_for(luna(), PromptFit.small), traits)
    assert request.max_tokens < max_tokens_for(luna())
    assert request.messages[-1].content.endswith(asked)
    # What a small model writes: her name, the question echoed, a template token and the next turn.
    result = result_of(request, f"Luna: {asked} Always, let's go<|im_end|>\nKai: ok")
    [sent] = [a for a in engine.handle_result(result, GUILD).actions if isinstance(a, Reply | SendMessage)]
    assert sent.content.startswith("Always, let's go"), sent.content
    assert "ranked" not in sent.content and "im_end" not in sent.content and "Kai" not in sent.content


def test_two_bots_stop_after_max_consecutive_replies() -> None:
    engine = Engine(new_tables())
    chatty = agent_with(AgentMode.human_like, behavior={"reply_to_bots": True, "max_consecutive_replies": 2})
    dep = deployed(chatty, guild_id=GUILD, bot_id=LUNA_BOT)
    engine.apply_routing(routing(GUILD, dep))
    other = user(snowflake(), "otherbot", bot=True)
    mention = [user(LUNA_BOT, "c", bot=True)]
    reasons = [
        say(
            engine, LUNA_BOT, other, f"<@{LUNA_BOT}> ping {n}", mentions=mention, at=T0 + timedelta(seconds=n)
        )
        .decisions[0]
        .reason
        for n in range(3)
    ]
    assert reasons == [DecisionReason.mentioned, DecisionReason.mentioned, DecisionReason.loop_cap]
    # A person speaking resets the streak.
    say(engine, LUNA_BOT, KAI, "hello", at=T0 + timedelta(seconds=10))
    again = say(
        engine, LUNA_BOT, other, f"<@{LUNA_BOT}> ping", mentions=mention, at=T0 + timedelta(seconds=11)
    )
    assert again.decisions[0].reason is DecisionReason.mentioned


def test_reminder_fires_from_the_timer(engine: Engine) -> None:
    helper = agent_with(AgentMode.semi_autonomous)
    bot = snowflake()
    record = engine.tables.routing[RoutingKey(GUILD).encode()]
    engine.apply_routing(
        record.model_copy(
            update={
                "deployments": [*record.deployments, deployed(helper, guild_id=GUILD, bot_id=bot)],
                "version": 2,
            }
        )
    )
    set_it = say(engine, bot, KAI, "!remind 10m stretch")
    assert texts(set_it) == ["I'll remind you in 10m: stretch"]
    assert not engine.fire_reminders(GUILD, T0 + timedelta(minutes=9))
    due = engine.fire_reminders(GUILD, T0 + timedelta(minutes=10))
    [message] = due.actions
    assert isinstance(message, SendMessage) and message.content == f"⏰ <@{KAI['id']}> stretch"
    assert message.about_user_id == KAI["id"]
    assert message.bot_id == bot and message.channel_id == GENERAL
    assert not engine.fire_reminders(GUILD, T0 + timedelta(minutes=11))


def test_a_poll_is_discords_own_and_its_results_are_announced_when_it_closes(engine: Engine) -> None:
    bot = snowflake()
    helper = agent_with(AgentMode.semi_autonomous)
    record = engine.tables.routing[RoutingKey(GUILD).encode()]
    engine.apply_routing(
        record.model_copy(
            update={
                "deployments": [*record.deployments, deployed(helper, guild_id=GUILD, bot_id=bot)],
                "version": 2,
            }
        )
    )
    asked = say(engine, bot, KAI, "!poll Movie night? | yes | no")
    [question] = [a for a in asked.actions if isinstance(a, Reply)]
    assert question.poll is not None and question.poll.answers == ["yes", "no"]
    poll_message = snowflake()
    running: dict[str, Any] = {"is_finalized": False, "answer_counts": [{"id": 1, "count": 2}]}
    poll = {
        "question": {"text": "Movie night?"},
        "answers": [
            {"answer_id": 1, "poll_media": {"text": "yes"}},
            {"answer_id": 2, "poll_media": {"text": "no"}},
        ],
    }
    data = {
        "id": poll_message,
        "channel_id": GENERAL,
        "guild_id": GUILD,
        "author": user(bot, "helper", bot=True),
    }

    def updated(results: dict[str, Any]) -> Any:
        body = {**data, "poll": {**poll, "results": results}}
        return engine.handle_event(
            envelope("MESSAGE_UPDATE", body, bot_id=bot, guild_id=GUILD, channel_id=GENERAL)
        )

    assert not updated(running).actions  # still running
    final = {"is_finalized": True, "answer_counts": [{"id": 1, "count": 3}, {"id": 2, "count": 1}]}
    [announced] = updated(final).actions
    assert isinstance(announced, Reply) and announced.message_id == poll_message
    assert announced.about_user_id is None  # the results, of everyone's votes, are about no one member
    assert announced.content == "📊 Poll closed: Movie night?\nyes: 3 votes\nno: 1 vote\nWinner: yes"
    [again] = updated(final).actions  # Discord sent the final results twice: the same action id
    assert again.action_id == announced.action_id
    other_bots = engine.handle_event(
        envelope(
            "MESSAGE_UPDATE",
            {**data, "author": KAI, "poll": {**poll, "results": final}},
            bot_id=bot,
            guild_id=GUILD,
            channel_id=GENERAL,
        )
    )
    assert not other_bots.actions


def test_leveling_announces_level_ups() -> None:
    engine = Engine(new_tables())
    leveled = agent_with(
        AgentMode.utility,
        enabled_tools=["moderation", "leveling"],
        leveling={"xp_min": 60, "xp_max": 60, "cooldown_s": 60},
    )
    engine.apply_routing(routing(GUILD, deployed(leveled, guild_id=GUILD, bot_id=MOD_BOT)))
    first = say(engine, MOD_BOT, KAI, "hi")
    cooled = say(engine, MOD_BOT, KAI, "hi again", at=T0 + timedelta(seconds=30))
    second = say(engine, MOD_BOT, KAI, "hi later", at=T0 + timedelta(seconds=61))
    assert not first.actions and not cooled.actions
    [announcement] = second.actions
    assert isinstance(announcement, SendMessage) and announcement.embed is not None
    assert announcement.embed.description == f"<@{KAI['id']}> reached level 1!"
    assert announcement.about_user_id == KAI["id"]


def test_malformed_dispatch_raises_naming_the_field(engine: Engine) -> None:
    bad = envelope(
        "MESSAGE_CREATE", {"id": snowflake(), "channel_id": GENERAL}, bot_id=MUSIC_BOT, guild_id=GUILD
    )
    with pytest.raises(MalformedEvent, match=r"invalid data\.author: Field required"):
        engine.handle_event(bad)
    nameless = envelope("CHANNEL_CREATE", {"name": "x"}, bot_id=MUSIC_BOT, guild_id=GUILD)
    with pytest.raises(MalformedEvent, match="CHANNEL_CREATE: invalid id"):
        engine.handle_event(nameless)
    assert not engine.handle_event(envelope("TYPING_START", {}, bot_id=MUSIC_BOT, guild_id=GUILD))


def test_direct_message_to_luna_is_answered_on_her_dm_key() -> None:
    engine = Engine(new_tables())
    companion = deployed(luna(), guild_id=GUILD, bot_id=LUNA_BOT)
    engine.apply_routing(routing(partition_key(None, LUNA_BOT), companion))
    dm_channel = snowflake()
    data = message_data(guild_id=None, channel_id=dm_channel, author=KAI, content="hey, are you there")
    out = engine.handle_event(
        envelope("MESSAGE_CREATE", data, bot_id=LUNA_BOT, guild_id=None, channel_id=dm_channel)
    )
    [decision] = out.decisions
    assert decision.reason is DecisionReason.mentioned and decision.guild_id is None
    [request] = out.requests
    assert request.target.guild_id is None and request.target.channel_id == dm_channel
    assert ContextKey(partition_key(None, LUNA_BOT), dm_channel).encode() in engine.tables.context


def test_seeded_configuration_is_applied_on_first_use_unless_older() -> None:
    music = deployed(agent_with(AgentMode.bare), guild_id=GUILD, bot_id=MUSIC_BOT)
    seeded = {GUILD: routing(GUILD, music, version=2)}
    engine = Engine(new_tables(), seed=lambda key: seeded.pop(key, None))
    assert texts(say(engine, MUSIC_BOT, KAI, "!queue")) == ["The queue is empty."]
    assert engine.tables.routing[RoutingKey(GUILD).encode()].version == 2 and not seeded
    stale = {GUILD: routing(GUILD, version=1)}
    later = Engine(engine.tables, seed=lambda key: stale.pop(key, None))
    assert texts(say(later, MUSIC_BOT, KAI, "!queue")) == ["The queue is empty."]
    assert later.tables.routing[RoutingKey(GUILD).encode()].version == 2 and not stale


def test_member_joining_cheers_luna_up(engine: Engine) -> None:
    dep = engine.tables.routing[RoutingKey(GUILD).encode()].deployments[2]
    before = engine.mood_for(GUILD, dep, T0)
    engine.handle_event(
        envelope("GUILD_MEMBER_ADD", {"guild_id": GUILD, "user": MIA}, bot_id=LUNA_BOT, guild_id=GUILD)
    )
    assert engine.mood_for(GUILD, dep, T0).valence > before.valence
