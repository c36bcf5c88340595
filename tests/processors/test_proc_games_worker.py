"""Games through the real worker: a full round of each game against the broker, with a redelivered event
(the same record produced twice) and a game the worker's timer ends."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from models.actions import InteractionResponse, Reply, SendMessage
from models.agent import AgentConfig
from models.deployments import DeployedAgent
from models.events import EventEnvelope
from models.tiers import Tier
from models.tools import COMMANDS_BY_TOOL, Tool
from processors.games import HANGMAN_WORDS, SHAKES
from processors.ids import seeded_rng
from streams.catalog import DISCORD_ACTIONS
from tests.processors.conftest import WAIT_S, Collector, Producer, Worker
from tests.processors.factories import (
    Where,
    deployed,
    luna,
    message_event,
    routing,
    slash_event,
    snowflake,
    user,
)

pytestmark = pytest.mark.stack

KAI, MIA = user(snowflake(), "kai"), user(snowflake(), "mia")
IDLE_S = 5
PROBES = 30


@dataclass
class Guild:
    id: str
    channel: str
    luna: DeployedAgent

    @property
    def bot(self) -> str:
        return self.luna.deployment.bot_id

    def say(self, author: dict[str, Any], content: str) -> EventEnvelope:
        return message_event(Where(self.bot, self.id, self.channel), author, content, datetime.now(UTC))

    def slash(self, invoker: dict[str, Any], name: str, **options: str) -> EventEnvelope:
        return slash_event(
            Where(self.bot, self.id, self.channel), invoker, name, options, at=datetime.now(UTC)
        )


def luna_playing() -> AgentConfig:
    data = luna().model_dump(mode="json")
    return AgentConfig.model_validate(
        {
            **data,
            "enabled_commands": [*data["enabled_commands"], *COMMANDS_BY_TOOL[Tool.games]],
            "channels": {},
            "games": {"idle_timeout_s": IDLE_S},
        }
    )


def answers(collector: Collector, event: EventEnvelope) -> list[Any]:
    return [
        a
        for a in collector.of(DISCORD_ACTIONS)
        if a.cause_event_id == event.event_id and isinstance(a, Reply | InteractionResponse)
    ]


async def answer_to(collector: Collector, event: EventEnvelope, within: float = WAIT_S) -> str:
    [found] = await collector.wait_for(
        DISCORD_ACTIONS,
        lambda a: a.cause_event_id == event.event_id and isinstance(a, Reply | InteractionResponse),
        within=within,
    )
    return str(found.content)


async def ask(produce: Producer, collector: Collector, event: EventEnvelope) -> str:
    await produce.event(event)
    return await answer_to(collector, event)


async def sent_by_timer(collector: Collector, guild: Guild, text: str) -> SendMessage:
    [sent] = await collector.wait_for(
        DISCORD_ACTIONS, lambda a: isinstance(a, SendMessage) and a.guild_id == guild.id and a.content == text
    )
    return sent


async def open_guild(produce: Producer, collector: Collector) -> Guild:
    """Deploy Luna with the games and wait until the worker answers in the guild."""
    guild_id = snowflake()
    companion = deployed(luna_playing(), guild_id=guild_id, bot_id=snowflake(), tier=Tier.business)
    guild = Guild(guild_id, snowflake(), companion)
    await produce.routing(routing(guild_id, companion))
    # The deployments and the events are different topics: probe until the configuration is applied.
    for _ in range(PROBES):
        probe = guild.slash(KAI, "wins")
        await produce.event(probe)
        with suppress(AssertionError):
            assert "Nobody has won a game yet." in await answer_to(collector, probe, within=2.0)
            return guild
    raise AssertionError(f"the worker never answered in guild {guild_id}")


async def test_rock_paper_scissors_challenge_and_a_challenge_left_unanswered(
    worker: Worker, produce: Producer, collector: Collector
) -> None:
    guild = await open_guild(produce, collector)
    challenged = await ask(produce, collector, guild.slash(KAI, "rps", choice="rock", opponent=MIA["id"]))
    assert challenged.startswith(f"<@{MIA['id']}>, <@{KAI['id']}> challenges you to rock-paper-scissors!")
    reply = guild.slash(MIA, "rps", choice="paper")
    verdict = f"<@{KAI['id']}>: 🪨 rock · <@{MIA['id']}>: 📄 paper — <@{MIA['id']}> wins!"
    assert await ask(produce, collector, reply) == verdict
    await produce.event(reply)  # redelivered
    wins = await ask(produce, collector, guild.slash(MIA, "wins"))
    assert wins == f"1. <@{MIA['id']}> — 1 win\nYou: 1 wins · 0 losses · 0 draws"
    assert len(answers(collector, reply)) == 1

    await ask(produce, collector, guild.slash(MIA, "rps", choice="scissors", opponent=KAI["id"]))
    await sent_by_timer(
        collector, guild, f"⌛ <@{KAI['id']}> did not answer <@{MIA['id']}>'s challenge in time."
    )
    against_luna = await ask(produce, collector, guild.slash(KAI, "rps", choice="rock"))
    assert against_luna.startswith("You: 🪨 rock · Luna: ")


async def test_hangman_round_with_a_redelivered_guess_then_an_idle_game_ends(
    worker: Worker, produce: Producer, collector: Collector
) -> None:
    guild = await open_guild(produce, collector)
    start = guild.say(KAI, "!hangman")
    assert (await ask(produce, collector, start)).startswith("🎯 Hangman!")
    # The word comes from the starting event, as the worker drew it: a replay draws the same.
    word = seeded_rng(start.event_id, guild.luna.deployment.deployment_id, "game").choice(HANGMAN_WORDS)
    wrong = [letter for letter in "zqxjkvwyfb" if letter not in word]
    miss = guild.say(MIA, f"!guess {wrong[0]}")
    assert (await ask(produce, collector, miss)).startswith("No. 5 misses left.")
    await produce.event(miss)  # redelivered: not a second miss
    assert (await ask(produce, collector, guild.say(MIA, f"!guess {wrong[1]}"))).startswith(
        "No. 4 misses left."
    )
    assert len(answers(collector, miss)) == 1
    solved = await ask(produce, collector, guild.slash(KAI, "guess", guess=word))
    assert solved == f"🎉 <@{KAI['id']}> solved it: **{word}**!"
    assert "You: 1 wins" in await ask(produce, collector, guild.slash(KAI, "wins"))

    idle = guild.say(MIA, "!hangman")
    await ask(produce, collector, idle)
    idle_word = seeded_rng(idle.event_id, guild.luna.deployment.deployment_id, "game").choice(HANGMAN_WORDS)
    ended = f"⌛ Hangman ended: nobody guessed in time. The word was **{idle_word}**."
    assert (await sent_by_timer(collector, guild, ended)).bot_id == guild.bot


async def test_the_eight_ball_answers_in_lunas_voice_once(
    worker: Worker, produce: Producer, collector: Collector
) -> None:
    guild = await open_guild(produce, collector)
    question = guild.slash(KAI, "8ball", question="Will I win the tournament?")
    answer = await ask(produce, collector, question)
    shakes = [shake.split(".")[0] for shakes in SHAKES.values() for shake in shakes]
    assert answer.startswith("🎱 ") and any(answer[2:].startswith(shake) for shake in shakes)
    await produce.event(question)  # redelivered: the same action, which the gateway performs once
    await ask(produce, collector, guild.slash(KAI, "coinflip"))
    assert {(a.action_id, a.content) for a in answers(collector, question)} == {
        (answers(collector, question)[0].action_id, answer)
    }
