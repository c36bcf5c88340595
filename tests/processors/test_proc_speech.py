"""Agents that speak: the voice configuration and its tier rules, the text said aloud, joining the voice
channel when deployed, and replies also said in voice through the engine."""

from __future__ import annotations

from dataclasses import fields

import pytest
from pydantic import ValidationError

from models.actions import Reply, SendMessage, VoiceJoin, VoiceSpeak
from models.agent import AgentConfig
from models.common import error_paths
from models.deployments import DeploymentStatus
from models.events import VOICE_TRANSCRIPT, EventEnvelope, VoiceTranscript
from models.tiers import Tier
from processors.engine import Engine, Tables
from processors.speech import heard_message, listens, speaks_in_voice, spoken_text, voice_id, voice_joins
from tests.processors.factories import (
    deployed,
    envelope,
    luna,
    message_data,
    result_of,
    routing,
    snowflake,
    user,
)

GUILD, GENERAL, LOUNGE, BOT = snowflake(), snowflake(), snowflake(), snowflake()


def luna_with(**ai: object) -> AgentConfig:
    data = luna().model_dump(mode="json")
    data["ai_config"].update(ai)
    data["channels"]["voice_channels"] = ["#lounge"]
    return AgentConfig.model_validate(data)


def test_spoken_text_leaves_the_markup_out() -> None:
    said = spoken_text(
        "**Hey** <@123>! Look at [this](https://x.example/a) ~~now~~ <:blush:456>\n> quoted `code`\n"
        "```py\nprint(1)\n```\nsee https://example.com/page"
    )
    assert said == "Hey ! Look at this now blush quoted code see"
    assert spoken_text("<@123> <#456> https://example.com") == ""


def test_the_voice_model_names_an_elevenlabs_voice() -> None:
    assert luna_with(voice_model="elevenlabs:voice-luna").ai_config.elevenlabs_voice_id == "voice-luna"  # type: ignore[union-attr]
    with pytest.raises(ValidationError) as bad:
        luna_with(voice_model="espeak:en")
    assert error_paths(bad.value) == ["ai_config.voice_model"]
    data = luna().model_dump(mode="json")
    data["enabled_tools"] = [tool for tool in data["enabled_tools"] if tool != "voice_tts"]
    with pytest.raises(ValidationError, match=r"ai_config\.voice_model: set but the voice_tts tool"):
        AgentConfig.model_validate(data)


def test_the_tier_decides_who_speaks_and_with_which_voice() -> None:
    agent = luna_with(voice_model="elevenlabs:voice-luna")
    business = deployed(agent, guild_id=GUILD, bot_id=BOT, tier=Tier.business)
    pro = deployed(agent, guild_id=GUILD, bot_id=BOT, tier=Tier.pro)
    free = deployed(agent, guild_id=GUILD, bot_id=BOT, tier=Tier.free)
    assert (speaks_in_voice(business), voice_id(business)) == (True, "voice-luna")
    # Pro includes voice but not premium voices: the offline engine speaks.
    assert (speaks_in_voice(pro), voice_id(pro)) == (True, "")
    assert not speaks_in_voice(free)
    plain = deployed(luna_with(voice_model=None), guild_id=GUILD, bot_id=BOT, tier=Tier.business)
    assert voice_id(plain) == ""


def test_a_speaking_agent_joins_its_voice_channel_when_deployed_or_started() -> None:
    luna_here = deployed(luna_with(), guild_id=GUILD, bot_id=BOT, tier=Tier.business, voice_channels=[LOUNGE])
    [join] = voice_joins(routing(GUILD, luna_here, version=1), None, None)
    assert isinstance(join, VoiceJoin) and (join.channel_id, join.bot_id, join.guild_id) == (
        LOUNGE,
        BOT,
        GUILD,
    )
    again = voice_joins(routing(GUILD, luna_here, version=2), routing(GUILD, luna_here, version=1), None)
    assert again == []
    paused = luna_here.model_copy(
        update={"deployment": luna_here.deployment.model_copy(update={"status": DeploymentStatus.paused})}
    )
    assert voice_joins(routing(GUILD, paused, version=3), None, None) == []
    [restarted] = voice_joins(routing(GUILD, luna_here, version=4), routing(GUILD, paused, version=3), None)
    assert restarted.channel_id == LOUNGE
    # Without the voice_tts tool nobody joins.
    silent = deployed(
        luna_with(voice_model=None).model_copy(update={"enabled_tools": []}), guild_id=GUILD, bot_id=BOT
    )
    assert voice_joins(routing(GUILD, silent), None, None) == []


def test_a_reply_is_also_said_in_the_voice_channel_the_agent_is_in() -> None:
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    companion = deployed(
        luna_with(voice_model="elevenlabs:voice-luna"), guild_id=GUILD, bot_id=BOT, tier=Tier.business
    )
    channels = [
        {"id": GENERAL, "name": "general", "type": 0, "position": 0},
        {"id": LOUNGE, "name": "lounge", "type": 2, "position": 1},
    ]
    created = {"id": GUILD, "name": "g", "channels": channels, "roles": [], "voice_states": [], "members": []}
    engine.handle_event(envelope("GUILD_CREATE", created, bot_id=BOT, guild_id=GUILD))
    [join] = engine.deploy(routing(GUILD, companion)).actions[-1:]
    assert isinstance(join, VoiceJoin) and join.channel_id == LOUNGE

    def answer(text: str) -> list[object]:
        """Mention Luna and have the model answer `text`: the actions of her reply."""
        asked = message_data(
            guild_id=GUILD, channel_id=GENERAL, author=user(snowflake(), "aiko"), content=f"<@{BOT}> hi"
        )
        asked["mentions"] = [user(BOT, "luna", bot=True)]
        mentioned = envelope("MESSAGE_CREATE", asked, bot_id=BOT, guild_id=GUILD, channel_id=GENERAL)
        [request] = engine.handle_event(mentioned).requests
        return list(engine.handle_result(result_of(request, text), GUILD).actions)

    # Not in voice yet (the edge has not reported the join): the reply is written only.
    assert not any(isinstance(a, VoiceSpeak) for a in answer("Hello there"))
    state = {"guild_id": GUILD, "user_id": BOT, "channel_id": LOUNGE, "session_id": "s"}
    engine.handle_event(envelope("VOICE_STATE_UPDATE", state, bot_id=BOT, guild_id=GUILD))
    actions = answer("**Good evening**, how was your day?")
    [spoken] = [a for a in actions if isinstance(a, VoiceSpeak)]
    assert any(isinstance(a, Reply) for a in actions)
    assert (spoken.channel_id, spoken.voice_id, spoken.bot_id) == (LOUNGE, "voice-luna", BOT)
    assert "Good evening" in spoken.text and "*" not in spoken.text


def test_a_speaking_agent_joins_when_its_bot_connects_unless_it_is_there() -> None:
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    # Deployed before the guild was known: "#lounge" could not be resolved then.
    companion = deployed(luna_with(), guild_id=GUILD, bot_id=BOT, tier=Tier.business)
    assert not any(isinstance(a, VoiceJoin) for a in engine.deploy(routing(GUILD, companion)).actions)
    channels = [{"id": LOUNGE, "name": "lounge", "type": 2, "position": 0}]

    def connected(voice_states: list[dict[str, str]]) -> list[object]:
        created = {"id": GUILD, "name": "g", "channels": channels, "roles": [], "voice_states": voice_states}
        return list(
            engine.handle_event(envelope("GUILD_CREATE", created, bot_id=BOT, guild_id=GUILD)).actions
        )

    [join] = connected([])
    assert isinstance(join, VoiceJoin) and (join.channel_id, join.bot_id) == (LOUNGE, BOT)
    assert connected([{"user_id": BOT, "channel_id": LOUNGE}]) == []


def test_listening_needs_the_voice_tool_and_is_off_by_default() -> None:
    assert not listens(deployed(luna_with(), guild_id=GUILD, bot_id=BOT, tier=Tier.business))
    data = luna_with(listen=True, voice_model=None).model_dump(mode="json")
    data["enabled_tools"] = [tool for tool in data["enabled_tools"] if tool != "voice_tts"]
    with pytest.raises(ValidationError, match=r"ai_config\.listen: on but the voice_tts tool"):
        AgentConfig.model_validate(data)
    # The tier's voice feature gates listening as it gates speaking.
    assert not listens(deployed(luna_with(listen=True), guild_id=GUILD, bot_id=BOT, tier=Tier.free))


def test_a_listening_agent_joins_with_its_name_and_joins_again_when_listening_changes() -> None:
    quiet = deployed(luna_with(), guild_id=GUILD, bot_id=BOT, tier=Tier.business, voice_channels=[LOUNGE])
    listening = deployed(
        luna_with(listen=True), guild_id=GUILD, bot_id=BOT, tier=Tier.business, voice_channels=[LOUNGE]
    )
    [join] = voice_joins(routing(GUILD, listening, version=1), None, None)
    assert join.listen_for == ["Luna"]
    [turned_off] = voice_joins(routing(GUILD, quiet, version=2), routing(GUILD, listening, version=1), None)
    assert turned_off.listen_for == []


def test_a_transcript_naming_luna_is_answered_in_text_and_in_voice() -> None:
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    companion = deployed(luna_with(listen=True), guild_id=GUILD, bot_id=BOT, tier=Tier.business)
    channels = [{"id": LOUNGE, "name": "lounge", "type": 2, "position": 0}]
    created = {"id": GUILD, "name": "g", "channels": channels, "roles": [], "voice_states": [], "members": []}
    engine.handle_event(envelope("GUILD_CREATE", created, bot_id=BOT, guild_id=GUILD))
    [join] = engine.deploy(routing(GUILD, companion)).actions[-1:]
    assert isinstance(join, VoiceJoin) and join.listen_for == ["Luna"]
    state = {"guild_id": GUILD, "user_id": BOT, "channel_id": LOUNGE, "session_id": "s"}
    engine.handle_event(envelope("VOICE_STATE_UPDATE", state, bot_id=BOT, guild_id=GUILD))
    speaker = snowflake()

    def said(content: str) -> EventEnvelope:
        data = {"guild_id": GUILD, "channel_id": LOUNGE, "user_id": speaker, "content": content}
        return envelope(VOICE_TRANSCRIPT, data, bot_id=BOT, guild_id=GUILD, channel_id=LOUNGE)

    assert engine.handle_event(said("what time is it")).requests == []
    [request] = engine.handle_event(said("luna what time is it")).requests
    assert request.target.channel_id == LOUNGE and request.target.author_id == speaker
    actions = list(engine.handle_result(result_of(request, "It is nine o'clock."), GUILD).actions)
    assert any(isinstance(a, Reply | SendMessage) and a.channel_id == LOUNGE for a in actions)
    [spoken] = [a for a in actions if isinstance(a, VoiceSpeak)]
    assert spoken.channel_id == LOUNGE and spoken.text.startswith("It is nine o'clock")
    # An agent that does not listen ignores what is said even with its name.
    deaf = deployed(luna_with(), guild_id=GUILD, bot_id=BOT, tier=Tier.business)
    engine.deploy(routing(GUILD, deaf, version=2))
    assert engine.handle_event(said("luna what time is it")).requests == []


def test_the_heard_message_mentions_the_agent_in_place_of_its_name() -> None:
    companion = deployed(luna_with(listen=True), guild_id=GUILD, bot_id=BOT, tier=Tier.business)
    transcript = VoiceTranscript(guild_id=GUILD, channel_id=LOUNGE, user_id=BOT, content="hello luna")
    heard = heard_message(transcript, "event-1", companion)
    assert heard is not None and heard.content == f"hello <@{BOT}>" and heard.mentions[0].id == BOT
    assert heard.id == heard_message(transcript, "event-1", companion).id  # type: ignore[union-attr]
    assert heard_message(transcript.model_copy(update={"content": "lunatic"}), "e", companion) is None
