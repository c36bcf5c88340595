"""Luna's character as the Discord emulator sees it, through every service of the demo: her persona worn in
the guild on deploy, the typing pause before a reply, presence that follows her mood, and reactions."""

from __future__ import annotations

from typing import Any

import pytest

from models.actions import React, Reply, TypingIndicator
from streams.catalog import DISCORD_ACTIONS
from tests.e2e.conftest import Demo, message_text

pytestmark = pytest.mark.stack

# While she is in the conversation (she spoke in the channel within five minutes), Luna answers about six
# plain messages in ten and, as her energy goes, reacts to one in five to ten of the rest: one message in
# 15 to 28 draws a reaction. Messages go in rounds until one is decided (read on the actions topic for
# ROUND_WAIT_S after each round), at most this many: missing them all is a 1-in-7,000 event at her lowest
# energy.
PLAIN_ROUND = 15
PLAIN_ROUNDS = 16
ROUND_WAIT_S = 3.0
# A reaction is performed after the replies she decided before it, each behind the pause she types for.
PERFORMED_S = 180.0


def by(bot_id: str, *kinds: str) -> Any:
    def match(action: dict[str, Any]) -> bool:
        return action["bot_id"] == bot_id and action["kind"] in kinds

    return match


async def mention(demo: Demo, luna: str, user: str, text: str) -> dict[str, Any]:
    return await demo.control.post_user_message(
        demo.users[user], f"<@{luna}> {text}", demo.channels["general"]
    )


async def test_luna_wears_her_persona_in_the_guild(demo: Demo) -> None:
    luna = demo.bots["Luna"]
    worn = await demo.wait_action(0, lambda a: by(luna, "persona", "nick")(a) and a["payload"].get("nick"))
    assert worn["guild_id"] == demo.guild_id and worn["payload"]["nick"] == "Luna"


async def test_luna_types_for_the_pause_her_reply_takes_then_answers(demo: Demo) -> None:
    luna = demo.bots["Luna"]
    since = await demo.last_seq()
    await mention(demo, luna, "aiko", "what are you up to tonight?")
    reply = await demo.wait_action(
        since, lambda a: by(luna, "message", "reply")(a) and "nebula" in message_text(a["payload"]).lower()
    )
    sent: Reply = await demo.wait_record(
        DISCORD_ACTIONS, lambda a: isinstance(a, Reply) and a.content == reply["payload"]["content"]
    )
    # The reply's typing indicator shares its request id: "<request>:typing" before "<request>:0".
    request_id = sent.action_id.rsplit(":", 1)[0]
    pause: TypingIndicator = await demo.wait_record(
        DISCORD_ACTIONS, lambda a: isinstance(a, TypingIndicator) and a.action_id == f"{request_id}:typing"
    )
    typed = [a for a in await demo.control.actions(since=since) if by(luna, "typing")(a)]
    assert typed and typed[0]["seq"] < reply["seq"]
    # The reply waited out the whole pause after the typing trigger.
    assert reply["at"] - typed[0]["at"] >= pause.delay_ms / 1000


async def test_praise_lifts_lunas_mood_into_her_presence(demo: Demo) -> None:
    luna = demo.bots["Luna"]
    since = await demo.last_seq()
    for n in range(8):
        await mention(demo, luna, "ben", f"you are awesome, thank you so much! I love it {n}")
    presence = await demo.wait_action(since, by(luna, "presence"))
    status = presence["payload"]["status"]
    activities = presence["payload"]["activities"]
    assert status in ("online", "idle", "dnd") and activities and activities[0]["state"]


async def test_luna_reacts_to_some_messages_with_an_emoji(demo: Demo) -> None:
    luna = demo.bots["Luna"]
    since = await demo.last_seq()
    posted: set[str] = set()

    def decided(action: object) -> bool:
        return isinstance(action, React) and action.bot_id == luna and action.message_id in posted

    for round_ in range(PLAIN_ROUNDS):
        for n in range(PLAIN_ROUND):
            message = await demo.control.post_user_message(
                demo.users["carmen"], f"just finished my laundry, load {round_}.{n}", demo.channels["general"]
            )
            posted.add(message["id"])
        # Decided on the actions topic; performed once the replies she decided before it are sent.
        found = await demo.read_records(DISCORD_ACTIONS, decided, ROUND_WAIT_S, first=True)
        if found:
            break
    else:
        raise AssertionError(f"no reaction decided for {len(posted)} messages")
    reacted = found[0].message_id
    reaction = await demo.wait_action(
        since, lambda a: by(luna, "reaction")(a) and a["payload"]["message_id"] == reacted, PERFORMED_S
    )
    assert reaction["channel_id"] == demo.channels["general"] and reaction["payload"]["emoji"]["name"]
