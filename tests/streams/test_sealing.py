"""Sealing the personal fields of events under their subject's data key and opening them
(streams/sealing.py), the processors opening only what concerns an agent."""

from __future__ import annotations

from dataclasses import fields

import pytest

from models.agent import AgentMode
from models.events import EventEnvelope
from processors.engine import Engine, Tables
from streams.catalog import DISCORD_EVENTS
from streams.sealing import (
    DataKey,
    SealBroken,
    open_envelope,
    seal_envelope,
    subject_user_id,
)
from tests.data_keys import MemoryDataKeys
from tests.processors.factories import (
    agent_with,
    deployed,
    envelope,
    guild_create,
    interaction_data,
    message_data,
    routing,
    user,
)

GUILD, CHANNEL, BOT, OTHER_GUILD = "100000000000000001", "200000000000000002", "300000000000000003", "1004"
SAM, ALEX = "400000000000000004", "500000000000000005"


def said(author_id: str, content: str, guild_id: str = GUILD) -> EventEnvelope:
    data = message_data(
        guild_id=guild_id, channel_id=CHANNEL, author=user(author_id, "samwise"), content=content
    )
    data["member"]["nick"] = "Sammy"
    return envelope("MESSAGE_CREATE", data, bot_id=BOT, guild_id=guild_id, channel_id=CHANNEL)


class NoKeys:
    """Keys that must not be asked for: the event concerns no agent."""

    async def data_key_for(self, user_id: str) -> DataKey:
        raise AssertionError("a data key was asked for")

    async def data_key_by_id(self, key_id: str) -> DataKey | None:
        raise AssertionError("a data key was asked for")


async def test_a_message_round_trips_and_its_personal_fields_are_not_in_the_topic_bytes() -> None:
    keys = MemoryDataKeys()
    event = said(SAM, "my secret plan")
    sealed = await seal_envelope(event, keys)
    raw = DISCORD_EVENTS.codec.encode(sealed)
    for personal in (b"my secret plan", SAM.encode(), b"samwise", b"Samwise", b"Sammy"):
        assert personal not in raw
    # What routing needs stays clear.
    assert (sealed.bot_id, sealed.guild_id, sealed.channel_id, sealed.type) == (
        BOT,
        GUILD,
        CHANNEL,
        "MESSAGE_CREATE",
    )
    assert sealed.data["id"] == event.data["id"] and sealed.data["channel_id"] == CHANNEL
    assert sealed.sealed is not None and sealed.sealed.key_id == keys.by_user[SAM].key_id
    opened = await open_envelope(DISCORD_EVENTS.codec.decode(raw), keys)
    assert opened == event


async def test_an_interaction_is_sealed_under_its_invokers_key_its_options_included() -> None:
    keys = MemoryDataKeys()
    data = interaction_data(
        application_id=BOT,
        guild_id=GUILD,
        channel_id=CHANNEL,
        invoker=user(ALEX, "alex"),
        name="remind",
        options=[{"name": "what", "type": 3, "value": "call my doctor"}],
    )
    event = envelope("INTERACTION_CREATE", data, bot_id=BOT, guild_id=GUILD, channel_id=CHANNEL)
    assert subject_user_id(event.data) == ALEX
    sealed = await seal_envelope(event, keys)
    raw = DISCORD_EVENTS.codec.encode(sealed)
    assert b"call my doctor" not in raw and ALEX.encode() not in raw
    # The token answers the interaction: it stays clear, as does the interaction's id.
    assert sealed.data["token"] == data["token"] and sealed.data["id"] == data["id"]
    assert await open_envelope(sealed, keys) == event


async def test_a_reaction_is_sealed_under_the_reacting_user_and_a_guild_object_under_no_one() -> None:
    keys = MemoryDataKeys()
    reaction = envelope(
        "MESSAGE_REACTION_ADD",
        {
            "user_id": SAM,
            "channel_id": CHANNEL,
            "message_id": "9",
            "guild_id": GUILD,
            "emoji": {"name": "🚩"},
        },
        bot_id=BOT,
        guild_id=GUILD,
        channel_id=CHANNEL,
    )
    sealed = await seal_envelope(reaction, keys)
    assert "user_id" not in sealed.data and sealed.sealed is not None
    assert sealed.sealed.key_id == keys.by_user[SAM].key_id
    guild = envelope(
        "GUILD_CREATE", guild_create(GUILD, owner_id=SAM, channels={}), bot_id=BOT, guild_id=GUILD
    )
    assert await seal_envelope(guild, keys) is guild


async def test_a_sealed_part_moved_to_another_event_or_relabelled_with_another_key_does_not_open() -> None:
    keys = MemoryDataKeys()
    sam = await seal_envelope(said(SAM, "mine"), keys)
    alex = await seal_envelope(said(ALEX, "theirs"), keys)
    assert sam.sealed is not None and alex.sealed is not None
    moved = alex.model_copy(update={"sealed": sam.sealed})
    with pytest.raises(SealBroken, match="tampered or moved"):
        await open_envelope(moved, keys)
    relabelled = sam.model_copy(
        update={"sealed": sam.sealed.model_copy(update={"key_id": alex.sealed.key_id})}
    )
    with pytest.raises(SealBroken, match="tampered or moved"):
        await open_envelope(relabelled, keys)
    ciphertext = sam.sealed.ciphertext
    flipped = ciphertext[:-4] + ("AAAA" if ciphertext[-4:] != "AAAA" else "BBBB")
    tampered = sam.model_copy(update={"sealed": sam.sealed.model_copy(update={"ciphertext": flipped})})
    with pytest.raises(SealBroken):
        await open_envelope(tampered, keys)


async def test_an_event_whose_key_is_destroyed_opens_as_erased_and_others_still_open() -> None:
    keys = MemoryDataKeys()
    sam = await seal_envelope(said(SAM, "forget me"), keys)
    alex = await seal_envelope(said(ALEX, "keep me"), keys)
    keys.destroy(SAM)
    assert await open_envelope(sam, keys) is None
    opened = await open_envelope(alex, keys)
    assert opened is not None and opened.data["content"] == "keep me"


def engine_with_agent() -> Engine:
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    engine.apply_routing(
        routing(GUILD, deployed(agent_with(AgentMode.human_like), guild_id=GUILD, bot_id=BOT))
    )
    return engine


async def test_the_processors_open_an_event_only_when_it_concerns_an_agent() -> None:
    engine, keys = engine_with_agent(), MemoryDataKeys()
    elsewhere = await seal_envelope(said(SAM, "not for us", guild_id=OTHER_GUILD), keys)
    assert not engine.concerns(elsewhere)
    assert await engine.opened_for(elsewhere, NoKeys()) is None
    here = await seal_envelope(said(SAM, "for us"), keys)
    assert engine.concerns(here)
    opened = await engine.opened_for(here, keys)
    assert opened is not None and opened.data["content"] == "for us"
    assert engine.handle_event(opened).decisions


async def test_the_processors_skip_an_erased_event_instead_of_failing_on_it() -> None:
    engine, keys = engine_with_agent(), MemoryDataKeys()
    here = await seal_envelope(said(SAM, "gone soon"), keys)
    keys.destroy(SAM)
    assert await engine.opened_for(here, keys) is None


async def test_what_a_reply_quotes_is_sealed_under_the_quoted_authors_key_and_erased_with_it() -> None:
    keys = MemoryDataKeys()
    quoted = said(SAM, "my own words").data
    data = message_data(
        guild_id=GUILD, channel_id=CHANNEL, author=user(ALEX, "alex"), content="replying", referenced=quoted
    )
    reply = envelope("MESSAGE_CREATE", data, bot_id=BOT, guild_id=GUILD, channel_id=CHANNEL)
    sealed = await seal_envelope(reply, keys)
    assert b"my own words" not in DISCORD_EVENTS.codec.encode(sealed)
    assert [(part.field, part.key_id) for part in sealed.sealed_references] == [
        ("referenced_message", keys.by_user[SAM].key_id)
    ]
    assert await open_envelope(sealed, keys) == reply
    # A part moved into the subject's place does not open there.
    swapped = sealed.model_copy(
        update={"sealed": sealed.sealed_references[0].model_copy(update={"field": None})}
    )
    with pytest.raises(SealBroken):
        await open_envelope(swapped, keys)
    keys.destroy(SAM)
    opened = await open_envelope(sealed, keys)
    assert opened is not None and "referenced_message" not in opened.data
    assert (
        opened.data["content"] == "replying"
        and opened.data["message_reference"]["message_id"] == quoted["id"]
    )


async def test_the_author_of_a_message_reacted_to_is_sealed_under_their_own_key() -> None:
    keys = MemoryDataKeys()
    data = {
        "user_id": SAM,
        "channel_id": CHANNEL,
        "message_id": "9",
        "message_author_id": ALEX,
        "guild_id": GUILD,
    }
    reaction = envelope("MESSAGE_REACTION_ADD", data, bot_id=BOT, guild_id=GUILD, channel_id=CHANNEL)
    sealed = await seal_envelope(reaction, keys)
    assert ALEX.encode() not in DISCORD_EVENTS.codec.encode(sealed)
    assert [part.key_id for part in sealed.sealed_references] == [keys.by_user[ALEX].key_id]
    keys.destroy(ALEX)
    opened = await open_envelope(sealed, keys)
    assert opened is not None and opened.data["user_id"] == SAM and "message_author_id" not in opened.data


async def test_each_member_a_message_mentions_is_sealed_under_their_own_key_and_left_out_once_erased() -> (
    None
):
    keys = MemoryDataKeys()
    mentions = [user(ALEX, "alex"), user(SAM, "samwise"), user(BOT, "Luna")]
    data = message_data(
        guild_id=GUILD,
        channel_id=CHANNEL,
        author=user(SAM, "samwise"),
        content=f"<@{ALEX}> <@{BOT}> hi",
        mentions=mentions,
    )
    message = envelope("MESSAGE_CREATE", data, bot_id=BOT, guild_id=GUILD, channel_id=CHANNEL)
    sealed = await seal_envelope(message, keys)
    assert b'"alex"' not in DISCORD_EVENTS.codec.encode(sealed)
    assert [(part.field, part.key_id) for part in sealed.sealed_references] == [
        ("mentions", keys.by_user[ALEX].key_id),
        ("mentions", keys.by_user[BOT].key_id),
    ]
    opened = await open_envelope(sealed, keys)
    # The author's own mention first, then the others' in the order mentioned.
    assert opened is not None and opened.data["mentions"] == [mentions[1], mentions[0], mentions[2]]
    keys.destroy(ALEX)
    opened = await open_envelope(sealed, keys)
    assert opened is not None and opened.data["mentions"] == [mentions[1], mentions[2]]
    # The content stays its author's words.
    assert opened.data["content"] == f"<@{ALEX}> <@{BOT}> hi"
