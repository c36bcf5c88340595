"""The writer's pure steps: which deployments remember a message, tenants from routing, reflection."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from memory.scoring import extractive_reflection
from memory.writer import (
    ChannelNames,
    ReflectionLedger,
    channel_name_changes,
    memories_of_message,
    reflection_records,
    scope_of,
    tenant_changes,
)
from models.agent import AgentMode, RelationshipSettings
from models.deployments import DeploymentStatus
from models.events import EventEnvelope
from models.memory import MemoryKind, StoredMemory
from tests.processors.factories import (
    T0,
    agent_with,
    deployed,
    envelope,
    luna,
    message_data,
    routing,
    snowflake,
    user,
)

GUILD, CHANNEL, BOT, OTHER_BOT = snowflake(), snowflake(), snowflake(), snowflake()
# The seed Luna keeps to #general, #anime and #gaming: the writer knows the channel by its name.
NAMES = {CHANNEL: "general"}
SAM = user(snowflake(), "sam")


def said(
    content: str,
    *,
    guild: str | None = GUILD,
    at: datetime = T0,
    mentions: list[dict[str, Any]] | None = None,
) -> EventEnvelope:
    data = message_data(
        guild_id=guild, channel_id=CHANNEL, author=SAM, content=content, at=at, mentions=mentions
    )
    return envelope("MESSAGE_CREATE", data, bot_id=BOT, guild_id=guild, channel_id=CHANNEL)


def test_each_ai_deployment_of_the_receiving_bot_remembers_the_message() -> None:
    luna_here = deployed(luna(), guild_id=GUILD, bot_id=BOT)
    elsewhere = deployed(luna(), guild_id=GUILD, bot_id=BOT, text_channels=[snowflake()])
    other_bot = deployed(luna(), guild_id=GUILD, bot_id=OTHER_BOT)
    no_ai = deployed(agent_with(AgentMode.utility), guild_id=GUILD, bot_id=BOT)
    paused = deployed(luna(), guild_id=GUILD, bot_id=BOT, status=DeploymentStatus.paused)
    event = said("I have my chemistry exam next Tuesday", mentions=[user(BOT, "luna", bot=True)])
    records = memories_of_message(
        event, routing(GUILD, luna_here, elsewhere, other_bot, no_ai, paused), NAMES
    )
    assert [r.deployment_id for r in records] == [luna_here.deployment.deployment_id]
    (record,) = records
    assert record.text == "I have my chemistry exam next Tuesday"
    assert record.kind is MemoryKind.observation
    assert record.author_id == SAM["id"] and record.people == [SAM["id"], BOT]
    assert record.guild_id == GUILD and record.channel_id == CHANNEL
    assert record.at == T0 and record.source_event_id == event.event_id
    # Addressed to the agent, a personal plan: well above a remark.
    assert record.importance >= 7


def test_memory_switched_off_or_nothing_said_gives_no_memory() -> None:
    forgetful = luna().model_copy(update={"memory": luna().memory.model_copy(update={"enabled": False})})
    assert (
        memories_of_message(
            said("hello"), routing(GUILD, deployed(forgetful, guild_id=GUILD, bot_id=BOT)), NAMES
        )
        == []
    )
    assert (
        memories_of_message(said("   "), routing(GUILD, deployed(luna(), guild_id=GUILD, bot_id=BOT)), NAMES)
        == []
    )
    assert memories_of_message(said("hello"), None, NAMES) == []


def test_dms_are_remembered_only_where_dms_are_taken() -> None:
    closed = luna().model_copy(update={"channels": luna().channels.model_copy(update={"dm_enabled": False})})
    takes_dms = deployed(closed, guild_id=GUILD, bot_id=BOT, dm_enabled=True)
    no_dms = deployed(closed, guild_id=GUILD, bot_id=BOT)
    by_config = deployed(luna(), guild_id=GUILD, bot_id=BOT)  # the seed Luna's own config takes DMs
    records = memories_of_message(
        said("secret", guild=None), routing(f"dm:{BOT}", takes_dms, no_dms, by_config), NAMES
    )
    assert all(record.guild_id is None for record in records)
    assert [r.deployment_id for r in records] == [d.deployment.deployment_id for d in (takes_dms, by_config)]


def test_redelivered_event_maps_to_the_same_memory() -> None:
    here = routing(GUILD, deployed(luna(), guild_id=GUILD, bot_id=BOT))
    event = said("I live in Lisbon")
    assert memories_of_message(event, here, NAMES)[0].id == memories_of_message(event, here, NAMES)[0].id


def test_stated_preferences_become_facts_about_the_author() -> None:
    here = deployed(luna(), guild_id=GUILD, bot_id=BOT)
    observation, favourite, likes = memories_of_message(
        said("My favourite food is pizza. I really love hiking!"), routing(GUILD, here), NAMES
    )
    assert observation.kind is MemoryKind.observation
    assert [favourite.text, likes.text] == ["Sam's favourite food is pizza.", "Sam likes hiking."]
    assert all(f.kind is MemoryKind.user_fact and f.people == [SAM["id"]] for f in (favourite, likes))
    assert favourite.guild_id == GUILD and favourite.channel_id == CHANNEL and favourite.at == T0


def test_a_fact_stated_again_renews_one_memory_per_scope() -> None:
    here = deployed(luna(), guild_id=GUILD, bot_id=BOT, dm_enabled=True)
    in_guild = memories_of_message(said("I love hiking"), routing(GUILD, here), NAMES)[1]
    again = memories_of_message(
        said("i LOVE Hiking", at=T0 + timedelta(days=1)), routing(GUILD, here), NAMES
    )[1]
    in_dm = memories_of_message(said("I love hiking", guild=None), routing(f"dm:{BOT}", here), NAMES)[1]
    assert again.id == in_guild.id and again.at > in_guild.at
    # A DM's fact is a memory of its own: recalled in that DM only, never rewritten into the guild.
    assert in_dm.id != in_guild.id and in_dm.guild_id is None


def test_no_facts_from_bots_or_where_preferences_are_not_remembered() -> None:
    behavior = luna().behavior.model_copy(
        update={"relationships": RelationshipSettings(remember_preferences=False)}
    )
    forgets = luna().model_copy(update={"behavior": behavior})
    (observation,) = memories_of_message(
        said("I love hiking"), routing(GUILD, deployed(forgets, guild_id=GUILD, bot_id=BOT)), NAMES
    )
    assert observation.kind is MemoryKind.observation
    data = message_data(
        guild_id=GUILD, channel_id=CHANNEL, author=user(BOT, "luna", bot=True), content="I love hiking"
    )
    event = envelope("MESSAGE_CREATE", data, bot_id=BOT, guild_id=GUILD, channel_id=CHANNEL)
    here = routing(GUILD, deployed(luna(), guild_id=GUILD, bot_id=BOT))
    assert [m.kind for m in memories_of_message(event, here, NAMES)] == [MemoryKind.observation]


def test_tenants_follow_the_routing() -> None:
    keep, gone = deployed(luna(), guild_id=GUILD, bot_id=BOT), deployed(luna(), guild_id=GUILD, bot_id=BOT)
    bare = deployed(agent_with(AgentMode.bare), guild_id=GUILD, bot_id=BOT)
    added, removed = tenant_changes(None, routing(GUILD, keep, gone, bare))
    assert added == {keep.deployment.deployment_id, gone.deployment.deployment_id} and removed == set()
    added, removed = tenant_changes(routing(GUILD, keep, gone, bare), routing(GUILD, keep, version=2))
    assert added == {keep.deployment.deployment_id} and removed == {gone.deployment.deployment_id}


def test_reflection_is_due_past_the_threshold_per_scope() -> None:
    here = deployed(luna(), guild_id=GUILD, bot_id=BOT)
    deployment_id = here.deployment.deployment_id
    ledger = ReflectionLedger(threshold_of={deployment_id: 20})
    records = [
        memories_of_message(said(f"I love hiking {i}"), routing(GUILD, here), NAMES)[0] for i in range(6)
    ]
    dm = memories_of_message(
        said("secret", guild=None),
        routing(
            f"dm:{BOT}",
            deployed(luna(), guild_id=GUILD, bot_id=BOT, dm_enabled=True, deployment_id=deployment_id),
        ),
        {},
    )
    assert ledger.add(records[:2]) == []
    assert ledger.add([*dm, *records[2:]]) == [scope_of(records[0])]
    assert scope_of(dm[0]) != scope_of(records[0])


def test_reflection_records_cite_their_sources_and_stay_in_scope() -> None:
    here = routing(GUILD, deployed(luna(), guild_id=GUILD, bot_id=BOT))
    texts = ["I really love hiking", "hiking in the alps was great", "I'm going to Japan next month", "ok"]
    records = [
        memories_of_message(said(t, at=T0 + timedelta(minutes=i)), here, NAMES)[0]
        for i, t in enumerate(texts)
    ]
    stored = [StoredMemory(id=r.id, record=r) for r in records]
    reflections = reflection_records(stored, extractive_reflection(stored), bot_id=BOT)
    assert reflections and all(r.kind is MemoryKind.reflection for r in reflections)
    assert all(set(r.cites) <= {m.id for m in stored} and r.cites for r in reflections)
    assert all(r.guild_id == GUILD and r.author_id == BOT for r in reflections)
    assert reflection_records(stored, extractive_reflection(stored), bot_id=BOT)[0].id == reflections[0].id
    assert reflection_records([], [], bot_id=BOT) == []


def test_reflections_over_other_memories_keep_their_own_ids_even_with_the_same_latest_one() -> None:
    """A memory that arrives late (said before the latest) changes what is reflected on, not which memory is
    latest: the second reflection must not overwrite the first."""
    here = routing(GUILD, deployed(luna(), guild_id=GUILD, bot_id=BOT))
    texts = ["I really love hiking", "hiking in the alps was great", "I'm going to Japan next month"]
    records = [
        memories_of_message(said(t, at=T0 + timedelta(minutes=i)), here, NAMES)[0]
        for i, t in enumerate(texts)
    ]
    stored = [StoredMemory(id=r.id, record=r) for r in records]
    late = memories_of_message(said("hiking again soon", at=T0 + timedelta(seconds=30)), here, NAMES)[0]
    with_late = [stored[0], StoredMemory(id=late.id, record=late), *stored[1:]]
    first = reflection_records(stored, extractive_reflection(stored), bot_id=BOT)
    second = reflection_records(with_late, extractive_reflection(with_late), bot_id=BOT)
    assert first and second and with_late[-1] is stored[-1]
    assert not {r.id for r in first} & {r.id for r in second}


async def test_an_agent_that_keeps_to_named_channels_remembers_only_what_is_said_there() -> None:
    """The processors' channel rule, with the names the writer learns from the guild's events."""
    keeps_to = luna().model_copy(
        update={"channels": luna().channels.model_copy(update={"text_channels": ["#general"]})}
    )
    here = routing(GUILD, deployed(keeps_to, guild_id=GUILD, bot_id=BOT))
    book = ChannelNames(None, "test.")
    # The channel's name is not known yet: better forgetful than remembering a channel it does not keep to.
    assert memories_of_message(said("my cat is called Miso"), here, book.names) == []
    channels = [{"id": CHANNEL, "name": "general"}]
    await book.apply(
        channel_name_changes(
            envelope("GUILD_CREATE", {"id": GUILD, "channels": channels}, bot_id=BOT, guild_id=GUILD)
        )
    )
    assert len(memories_of_message(said("my cat is called Miso"), here, book.names)) == 1
    renamed = {"id": CHANNEL, "name": "anime", "guild_id": GUILD}
    await book.apply(channel_name_changes(envelope("CHANNEL_UPDATE", renamed, bot_id=BOT, guild_id=GUILD)))
    assert memories_of_message(said("my cat is called Miso"), here, book.names) == []
    await book.apply(
        channel_name_changes(envelope("CHANNEL_DELETE", {"id": CHANNEL}, bot_id=BOT, guild_id=GUILD))
    )
    assert book.names == {}
