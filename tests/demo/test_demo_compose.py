"""What the person types becomes what Discord's client would send; what the platform publishes becomes
what the page shows. Pure functions, no services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from api.presets import all_presets
from demo.playground.compose import (
    ComposeError,
    HistoryMessage,
    message_view,
    parse_slash,
    pick_agent,
    shown_mentions,
    slash_options,
    with_mentions,
)
from demo.playground.live import EVENT_WINDOW_S, LiveState, Names
from demo.playground.views import AgentView, AnswerView
from demo.world import AGENTS, agent_config
from models.actions import Reply, SendMessage, Timeout
from models.decisions import Decision, DecisionReason, Priority
from models.events import EventEnvelope
from models.memory import MemoryKind, RecalledNote
from models.operations import ModerationAudit
from models.processor_state import GuildDirectory
from models.state import MoodState, Relationship
from models.table_keys import MalformedTableKey, MoodKey, RelationshipKey
from tests.memory.test_scoring import ai_result

GUILD = "1000"
YOU = "2000"


def demo_agents() -> list[AgentView]:
    presets = all_presets()
    return [
        AgentView(
            deployment_id=uuid4(),
            agent_id=uuid4(),
            bot_id=str(3000 + index),
            guild_id=GUILD,
            name=plan.name,
            config=agent_config(plan, presets[plan.preset].config),
            editable=True,
        )
        for index, plan in enumerate(AGENTS)
    ]


def by_name(agents: list[AgentView], name: str) -> AgentView:
    return next(a for a in agents if a.name == name)


def test_slash_commands_are_told_from_messages() -> None:
    assert parse_slash("/play lofi hip hop") == ("play", "lofi hip hop")
    assert parse_slash("  /Queue ") == ("queue", "")
    assert parse_slash("!play lofi") is None
    assert parse_slash("/ not a command") is None
    assert parse_slash("and/or") is None


def test_a_slash_command_goes_to_the_first_agent_that_has_it_or_the_one_picked() -> None:
    agents = demo_agents()
    assert pick_agent("play", agents).name == "Music Bot"
    assert pick_agent("ban", agents).name == "Mod Bot"
    luna = by_name(agents, "Luna")
    assert pick_agent("play", agents, luna.bot_id) is luna
    with pytest.raises(ComposeError, match="no agent here has /dance"):
        pick_agent("dance", agents)
    with pytest.raises(ComposeError, match="bot 1"):
        pick_agent("play", agents, "1")


def test_options_are_parsed_by_the_command_declarations() -> None:
    agents = demo_agents()
    music, mod, luna = by_name(agents, "Music Bot"), by_name(agents, "Mod Bot"), by_name(agents, "Luna")
    [query] = slash_options(music, "play", "lofi beats")
    assert (query.name, query.type, query.value) == ("query", 3, "lofi beats")
    options = {o.name: (o.type, o.value) for o in slash_options(mod, "timeout", f"<@{YOU}> 10m too loud")}
    assert options == {"user": (6, YOU), "duration": (3, "600s"), "reason": (3, "too loud")}
    [args] = slash_options(luna, "hug", "everyone")
    assert (args.name, args.value) == ("args", "everyone")
    with pytest.raises(ComposeError, match=r"query is missing\. Usage: /play <query>"):
        slash_options(music, "play", "")
    with pytest.raises(ComposeError, match="not a command Music Bot knows"):
        slash_options(music, "dance", "")


def test_mentions_by_name_become_real_mentions_and_show_as_names() -> None:
    people = {"Mod Bot": "11", "Mod": "12", "Luna": "13"}
    assert with_mentions("@mod bot and @Mod, hi @Luna!", people) == "<@11> and <@12>, hi <@13>!"
    assert with_mentions("mail me@Lunar.example", people) == "mail me@Lunar.example"
    names = Names(users={"13": "Luna"})
    assert shown_mentions("hey <@13> and <@!13>, <@99>", names) == "hey @Luna and @Luna, @99"


def test_history_messages_show_commands_replies_and_mentions() -> None:
    names = Names(users={YOU: "You", "13": "Luna"})
    raw = {
        "id": "500",
        "channel_id": "1",
        "author": {"id": "13", "username": "luna", "bot": True},
        "content": "hi <@2000>~",
        "timestamp": "2026-01-01T10:00:00+00:00",
        "mentions": [{"id": YOU, "username": "you"}],
        "embeds": [{"title": "Music", "description": "Playing: lofi"}],
        "interaction_metadata": {"id": "77", "type": 2},
        "referenced_message": {"id": "499", "channel_id": "1", "author": {"id": YOU, "username": "you"}},
        "flags": 64,
    }
    answer = AnswerView(fallback=False, model="SmolLM2-135M-Instruct", endpoint="local")
    answers = {("13", "499"): answer, ("14", "499"): AnswerView(fallback=True, model="m")}
    view = message_view(HistoryMessage.model_validate(raw), names, YOU, {"77": "/play lofi"}, answers)
    assert view.author_name == "Luna" and view.bot
    assert view.content == "hi @You~"
    assert view.embeds[0].description == "Playing: lofi"
    assert view.command == "/play lofi"
    assert view.ephemeral and view.mentions_you
    assert view.replying_to == "You"
    # Luna's answer to message 499, not Kai's.
    assert view.answered_by == answer


def _state() -> tuple[LiveState, UUID, UUID]:
    luna, kai = uuid4(), uuid4()
    return LiveState({luna: "13", kai: "14"}, {GUILD}, Names(users={YOU: "You"})), luna, kai


def _decision(deployment_id: UUID, seconds: int, respond: bool = True) -> Decision:
    return Decision(
        event_id=f"e{seconds}",
        deployment_id=deployment_id,
        agent_id=uuid4(),
        guild_id=GUILD,
        channel_id="1",
        author_id=YOU,
        respond=respond,
        reason=DecisionReason.mentioned if respond else DecisionReason.no_trigger,
        priority=Priority.high if respond else None,
        decided_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds),
    )


def test_decisions_are_kept_per_agent_newest_first_with_names() -> None:
    state, luna, kai = _state()
    state.names.channels["1"] = "general"
    for seconds in (1, 3):
        state.on_decision(_decision(luna, seconds))
    state.on_decision(_decision(kai, 2, respond=False))
    state.on_decision(_decision(uuid4(), 4))  # someone else's deployment
    assert [d.deployment_id for d in state.decisions(10)] == [luna, kai, luna]
    assert [d.at.second for d in state.decisions(10, luna)] == [3, 1]
    shown = state.decisions(1)[0]
    assert (shown.channel_name, shown.author_name, shown.reason) == (
        "general",
        "You",
        DecisionReason.mentioned,
    )
    assert state.counters(0).decisions == 3


def test_the_agent_panel_shows_what_the_latest_reply_recalled() -> None:
    state, luna, kai = _state()
    fact = RecalledNote(
        id=uuid4(),
        kind=MemoryKind.observation,
        author_name="You",
        text="my sister's name is Zoraida",
        at=datetime(2026, 1, 1, tzinfo=UTC),
        score=2.5,
    )
    state.on_result(ai_result(luna, recalled=[fact]))
    assert state.agent(luna).recalled == [fact]
    assert state.agent(kai).recalled == []
    # The next reply recalled nothing: the panel shows that, not the earlier reply's memories.
    state.on_result(ai_result(luna))
    assert state.agent(luna).recalled == []


def test_counters_count_followed_events_replies_and_ai_calls() -> None:
    state, luna, kai = _state()

    def event(guild: str | None, bot: str = "13") -> EventEnvelope:
        data = {"author": {"id": "21", "username": "aiko", "global_name": "Aiko"}, "content": "hi"}
        return EventEnvelope(
            event_id="x", bot_id=bot, guild_id=guild, type="MESSAGE_CREATE", sequence=1, data=data
        )

    state.on_event(event(GUILD), now=100.0)
    state.on_event(event(None, bot="14"), now=101.0)  # a DM to a followed bot
    state.on_event(event("999", bot="99"), now=101.0)  # another guild
    assert state.names.user("21") == "Aiko"
    common = {"action_id": "a", "guild_id": GUILD}
    state.on_action(SendMessage(bot_id="13", channel_id="1", content="hi", deployment_id=str(luna), **common))
    state.on_action(Reply(bot_id="14", channel_id="1", message_id="2", content="yo", **common))
    state.on_action(Timeout(bot_id="13", user_id=YOU, duration_s=60, **common))  # not a reply
    for fallback in (False, True):
        state.on_result(ai_result(luna, fallback=fallback))
    counters = state.counters(101.0)
    assert (counters.events, counters.replies, counters.ai_calls, counters.ai_fallbacks) == (2, 2, 2, 1)
    # The message list labels Luna's answer to message 2 with the path of the latest result for it.
    assert state.answers[("13", "2")] == AnswerView(fallback=True, model="m")
    assert counters.events_per_s == pytest.approx(2 / EVENT_WINDOW_S)
    assert state.counters(101.0 + EVENT_WINDOW_S + 1).events_per_s == 0
    assert state.agent(kai).replies == 1


def test_mood_and_relationships_come_from_the_tables_changelogs() -> None:
    state, luna, kai = _state()
    state.on_table("moods", MoodKey(GUILD, luna).encode(), MoodState(mood="happy", valence=0.5))
    state.on_table(
        "relationships",
        RelationshipKey(GUILD, luna, YOU).encode(),
        Relationship(user_id=YOU, affinity=62, interaction_count=3),
    )
    state.on_table(
        "relationships",
        RelationshipKey(GUILD, luna, "21").encode(),
        Relationship(user_id="21", display_name="Aiko", interaction_count=9),
    )
    state.on_table(
        "relationships", RelationshipKey(GUILD, uuid4(), YOU).encode(), Relationship(user_id=YOU, affinity=99)
    )
    state.on_table("directory", GUILD, GuildDirectory(guild_id=GUILD, channel_names={"1": "general"}))
    with pytest.raises(MalformedTableKey, match="moods key 'not-a-key'"):
        state.on_table("moods", "not-a-key", None)
    live = state.agent(luna, YOU)
    assert live.mood is not None and live.mood.mood == "happy"
    assert live.affinity is not None and (live.affinity.affinity, live.affinity.name) == (62, "You")
    assert [r.name for r in live.relationships] == ["Aiko", "You"]
    assert state.names.channel("1") == "general"
    assert state.agent(kai, YOU).affinity is None
    state.on_table("relationships", RelationshipKey(GUILD, luna, YOU).encode(), None)
    state.on_table("moods", MoodKey(GUILD, luna).encode(), None)
    assert state.agent(luna, YOU).affinity is None and state.agent(luna).mood is None


def test_moderation_of_followed_agents_is_kept_newest_first() -> None:
    state, luna, _ = _state()
    for rule in ("links", "spam"):
        state.on_audit(
            ModerationAudit(
                audit_id=rule,
                deployment_id=luna,
                guild_id=GUILD,
                user_id=YOU,
                source="automod",
                rule=rule,
                actions=["delete", "warn"],
                reason=f"{rule} rule",
            )
        )
    state.on_audit(
        ModerationAudit(
            audit_id="x",
            deployment_id=uuid4(),
            guild_id=GUILD,
            user_id=YOU,
            source="automod",
            rule="x",
            actions=[],
        )
    )
    assert [(m.rule, m.user_name) for m in state.moderation_view()] == [("spam", "You"), ("links", "You")]
