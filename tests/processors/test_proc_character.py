"""The character through the engine: persona updates on deploy, presence that follows the mood, reactions,
forgetting past max_tracked_users, and inference requests and replies shaped by traits and affinity."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from models.actions import MemberPersonaUpdate, PresenceUpdate, React, Reply, TypingIndicator
from models.agent import MAX_TRACKED_USERS, AgentConfig, MoodName, RelationshipSettings
from models.common import error_paths
from models.inference import InferenceResult, ReplyTarget
from models.processor_state import TrackedUsers, fits_in_table
from models.state import MoodState, Relationship
from models.table_keys import RelationshipKey, TrackedKey
from processors.engine import Engine, Outputs, Tables
from processors.replies import compose_reply
from processors.styling import EMOJI_BY_MOOD
from processors.traits import reply_tokens, temperature
from tests.processors.factories import (
    T0,
    deployed,
    envelope,
    guild_create,
    luna,
    message_data,
    routing,
    snowflake,
    user,
)

GUILD, GENERAL, BOT = snowflake(), snowflake(), snowflake()
KAI = user(snowflake(), "kai")


def character(**changes: Any) -> AgentConfig:
    """Luna with character, behaviour and AI settings changed (nested dicts merge one level deep)."""
    data = luna().model_dump(mode="json")
    for section, values in changes.items():
        target = data
        *path, last = section.split(".")
        for part in path:
            target = target[part]
        target[last] = {**target[last], **values} if isinstance(values, dict) else values
    return AgentConfig.model_validate(data)


def engine_with(agent: AgentConfig, version: int = 1) -> tuple[Engine, Outputs]:
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    deployment = deployed(agent, guild_id=GUILD, bot_id=BOT)
    outputs = engine.deploy(routing(GUILD, deployment, version=version))
    created = guild_create(GUILD, owner_id=snowflake(), channels={GENERAL: "general"}, roles={})
    engine.handle_event(envelope("GUILD_CREATE", created, bot_id=BOT, guild_id=GUILD))
    return engine, outputs


def say(engine: Engine, content: str, *, author=KAI, at=T0, mention: bool = False) -> Outputs:
    mentions = [user(BOT, "luna", bot=True)] if mention else None
    text = f"<@{BOT}> {content}" if mention else content
    data = message_data(
        guild_id=GUILD, channel_id=GENERAL, author=author, content=text, at=at, mentions=mentions
    )
    return engine.handle_event(
        envelope("MESSAGE_CREATE", data, bot_id=BOT, guild_id=GUILD, channel_id=GENERAL, at=at)
    )


def test_deploying_dresses_the_bot_in_its_persona_once_and_again_on_change() -> None:
    agent = character(character={"bio": "Gamer girl, anime lover"})
    engine, first = engine_with(agent)
    profile, images = first.actions
    assert isinstance(profile, MemberPersonaUpdate) and isinstance(images, MemberPersonaUpdate)
    assert (profile.guild_id, profile.nick, profile.bio) == (GUILD, "Luna", "Gamer girl, anime lover")
    worn = agent.character
    assert worn is not None
    assert (images.avatar_url, images.banner_url) == (worn.avatar_url, worn.banner_url)
    deployment = engine.tables.routing[GUILD].deployments[0]
    # A newer record with the same persona asks for nothing; the same record again is ignored.
    same = routing(GUILD, deployment, version=2)
    assert not engine.deploy(same).actions and not engine.deploy(same).actions
    renamed = deployment.model_copy(update={"agent": character(character={"name": "Luna-chan"})})
    [rename] = engine.deploy(routing(GUILD, renamed, version=3)).actions
    assert (
        isinstance(rename, MemberPersonaUpdate) and rename.nick == "Luna-chan" and rename.avatar_url is None
    )
    assert rename.action_id != profile.action_id


def test_a_new_mood_shows_in_the_presence() -> None:
    engine, _ = engine_with(character(**{"behavior.mood": {"current": "neutral"}}))
    updates: list[PresenceUpdate] = []
    for minute in range(6):
        out = say(
            engine,
            "you are awesome, I love this, thank you!",
            at=T0 + timedelta(minutes=minute),
            mention=True,
        )
        updates += [a for a in out.actions if isinstance(a, PresenceUpdate)]
    mood = engine.tables.moods[
        f"{GUILD}/{engine.tables.routing[GUILD].deployments[0].deployment.deployment_id}"
    ]
    assert mood.mood is not MoodName.neutral
    # One update per change of mood, the last one the mood it is in now.
    assert updates and updates[-1].bot_id == BOT
    definition = luna().behavior.mood.moods[mood.mood]
    assert (updates[-1].status, updates[-1].activity) == (definition.status, definition.activity)
    assert len({u.action_id for u in updates}) == len(updates) <= 3


def test_reactions_come_from_the_mood_at_a_rate_set_by_character() -> None:
    quiet_triggers = {
        "keyword_match": {"probability": 0.0},
        "random": {"probability": 0.0},
        "bored": {"probability": 0.0},
    }
    outgoing = character(
        **{
            "character.personality": {"extraversion": 100, "agreeableness": 100},
            "behavior.response_triggers": quiet_triggers,
        }
    )
    plain = character(
        **{"character.speech_style": {"emoji_usage": "none"}, "behavior.response_triggers": quiet_triggers}
    )
    counts = []
    for agent in (outgoing, plain):
        engine, _ = engine_with(agent)
        reactions = [
            a
            for minute in range(120)
            for a in say(engine, f"random chatter {minute}", at=T0 + timedelta(minutes=minute)).actions
            if isinstance(a, React)
        ]
        assert all(r.emoji in {e for pool in EMOJI_BY_MOOD.values() for e in pool} for r in reactions)
        counts.append(len(reactions))
    assert counts[0] >= 5 and counts[1] == 0


def test_past_max_tracked_users_the_least_recently_met_is_forgotten() -> None:
    engine, _ = engine_with(character(**{"behavior.relationships": {"max_tracked_users": 2}}))
    people = [user(snowflake(), name) for name in ("ana", "ben", "cy")]
    for minute, person in enumerate(people):
        say(engine, "hi there", author=person, at=T0 + timedelta(minutes=minute), mention=True)
    remembered = {key.rsplit("/", 1)[1] for key in engine.tables.relationships}
    assert remembered == {people[1]["id"], people[2]["id"]}
    # Ben speaks again, then someone new: Cy is now the least recently met.
    say(engine, "me again", author=people[1], at=T0 + timedelta(minutes=3), mention=True)
    dee = user(snowflake(), "dee")
    say(engine, "hello", author=dee, at=T0 + timedelta(minutes=4), mention=True)
    remembered = {key.rsplit("/", 1)[1] for key in engine.tables.relationships}
    assert remembered == {people[1]["id"], dee["id"]}
    [tracked] = engine.tables.tracked.values()
    assert tracked.users == [people[1]["id"], dee["id"]]


def test_talking_with_someone_tracked_already_rewrites_only_their_relationship() -> None:
    """Whom a deployment tracks is one value for all its users: rewritten with every message, it cost a
    record of about 23 bytes a user per message (45 KB at the default 1,000)."""
    engine, _ = engine_with(character())
    say(engine, "hi there", mention=True)
    [tracked] = engine.tables.tracked.values()
    say(engine, "how are you?", at=T0 + timedelta(minutes=1), mention=True)
    [after] = engine.tables.tracked.values()
    assert after is tracked and tracked.users == [KAI["id"]]
    [relationship] = engine.tables.relationships.values()
    assert relationship.interaction_count == 2 and relationship.last_met == T0 + timedelta(minutes=1)


def test_the_tracked_users_recovered_anew_are_ranked_anew() -> None:
    """The engine keeps whom a deployment met least recently beside the tables; a value it did not write
    (recovered from the changelog, erased) is ranked afresh."""
    engine, _ = engine_with(character(**{"behavior.relationships": {"max_tracked_users": 2}}))
    people = [user(snowflake(), name) for name in ("ana", "ben", "cy")]
    for minute, person in enumerate(people):
        say(engine, "hi there", author=person, at=T0 + timedelta(minutes=minute), mention=True)
    # As if recovered with Ben's records gone: Ana is back, and met after Cy.
    [key] = engine.tables.tracked
    tracked = TrackedKey.parse(key)
    ana, ben = (RelationshipKey(tracked.partition_key, tracked.deployment_id, p["id"]) for p in people[:2])
    engine.tables.tracked[key] = TrackedUsers(users=[people[0]["id"], people[2]["id"]])
    del engine.tables.relationships[ben.encode()]
    met_again = T0 + timedelta(minutes=5)
    engine.tables.relationships[ana.encode()] = Relationship(user_id=people[0]["id"], last_met=met_again)
    dee = user(snowflake(), "dee")
    say(engine, "hello", author=dee, at=T0 + timedelta(minutes=6), mention=True)
    assert engine.tables.tracked[key].users == [people[0]["id"], dee["id"]]


def test_tracked_users_written_with_when_each_was_last_seen_are_read() -> None:
    """Values written before `TrackedUsers.users` kept each user's last time, rewritten with every message."""
    written = '{"last_seen": {"1": "2026-01-01T00:00:00Z", "2": "2026-01-02T00:00:00Z"}}'
    legacy = TrackedUsers.model_validate_json(written)
    assert legacy.users == ["1", "2"]


def test_requests_follow_the_traits_and_greet_a_friend_by_name() -> None:
    agent = character(
        **{"character.personality": {"openness": 100, "extraversion": 20}, "ai_config": {"temperature": 0.8}}
    )
    engine, _ = engine_with(agent)
    [request] = say(engine, "hello!", mention=True).requests
    assert agent.character is not None
    traits = agent.character.personality
    assert request.temperature == temperature(0.8, traits) > 0.8
    assert request.max_tokens == reply_tokens(350, traits) < 350
    assert request.target.greet_as is None  # a stranger
    key = next(iter(engine.tables.relationships))
    engine.tables.relationships[key] = engine.tables.relationships[key].model_copy(update={"affinity": 85})
    [later] = say(engine, "hello again!", at=T0 + timedelta(hours=3), mention=True).requests
    assert later.target.greet_as == "Kai" and later.max_tokens > reply_tokens(350, traits)
    # Within the same conversation the friend is not greeted again.
    [next_one] = say(
        engine, "and another thing", at=T0 + timedelta(hours=3, minutes=1), mention=True
    ).requests
    assert next_one.target.greet_as is None


def result_for(text: str, greet_as: str | None = None, latency_ms: float = 0.0) -> InferenceResult:
    deployment = deployed(luna(), guild_id=GUILD, bot_id=BOT).deployment
    return InferenceResult(
        request_id="req-1",
        event_id="evt-1",
        deployment_id=deployment.deployment_id,
        agent_id=deployment.agent_id,
        owner_id=deployment.owner_id,
        tier="pro",
        lane="standard",
        target=ReplyTarget(
            bot_id=BOT, guild_id=GUILD, channel_id=GENERAL, message_id=snowflake(), greet_as=greet_as
        ),
        text=text,
        model="m",
        prompt_tokens=1,
        completion_tokens=1,
        latency_ms=latency_ms,
        cost_usd=0.0,
    )


def test_replies_greet_by_name_and_careless_characters_make_typos() -> None:
    mood = MoodState()
    [_, greeted] = compose_reply(result_for("the stars are out tonight", greet_as="Kai"), luna(), mood)
    assert isinstance(greeted, Reply) and greeted.content.startswith("Hey Kai!")
    [_, named] = compose_reply(result_for("oh kai, the stars are out", greet_as="Kai"), luna(), mood)
    assert isinstance(named, Reply) and "Hey Kai" not in named.content
    text = " ".join(["something wonderful happened yesterday evening"] * 20)
    careful = compose_reply(result_for(text), luna(), mood)[1]
    sloppy_agent = character(**{"character.personality": {"conscientiousness": 0}})
    sloppy = compose_reply(result_for(text), sloppy_agent, mood)[1]
    assert isinstance(careful, Reply) and isinstance(sloppy, Reply)
    words = {"something", "wonderful", "happened", "yesterday", "evening"}
    assert all(w.strip(".,!~") in words for w in careful.content.split() if w.isalpha())
    assert any(w.isalpha() and w.islower() and w not in words for w in sloppy.content.split())
    # Time the model already took counts towards the typing pause.
    slow = compose_reply(result_for("hi", latency_ms=60_000), luna(), mood)[0]
    assert isinstance(slow, TypingIndicator) and slow.delay_ms == 0


def test_whom_a_deployment_tracks_fits_a_changelog_record_at_the_most_it_may_track() -> None:
    """The tracked users are one table value: the setting's bound keeps it within what a record takes."""
    most = TrackedUsers(users=[str(10**19 + n) for n in range(MAX_TRACKED_USERS)])
    assert fits_in_table(most)
    with pytest.raises(ValidationError) as raised:
        RelationshipSettings(max_tracked_users=MAX_TRACKED_USERS + 1)
    assert error_paths(raised.value) == ["max_tracked_users"]
