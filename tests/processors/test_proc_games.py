"""Games through the engine over in-memory tables: full rounds of rock-paper-scissors (against the agent and
between members), hangman and the 8-ball, each with a redelivered event, and the timer ending idle games."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

import pytest

from models.actions import InteractionResponse, Reply, SendMessage
from models.agent import AgentConfig, AgentMode, MoodName
from models.deployments import DeployedAgent
from models.discord import DiscordUser
from models.events import EventEnvelope
from models.processor_state import GameBook, GameRecord, Leaderboard
from models.state import MoodState
from models.table_keys import GameBoardKey, GameRecordKey, GamesKey, MoodKey
from models.tools import COMMANDS_BY_TOOL, Tool
from processors.commands import Invocation
from processors.emit import MessageOrigin
from processors.engine import Engine, Outputs, Tables
from processors.games import EIGHT_BALL, MAX_MISSES, MOVES, SHAKES, Result, chance, judge
from processors.ids import seeded_rng
from tests.processors.factories import (
    T0,
    Where,
    agent_with,
    deployed,
    luna,
    message_event,
    routing,
    slash_event,
    snowflake,
    user,
)

GAMES = list(COMMANDS_BY_TOOL[Tool.games])
IDLE_S = 60
KAI, MIA = user(snowflake(), "kai"), user(snowflake(), "mia")


class Table:
    """One guild with one games agent, played through the engine."""

    def __init__(self, agent: AgentConfig) -> None:
        self.guild, self.channel, self.bot = snowflake(), snowflake(), snowflake()
        self.engine = Engine(Tables(*({} for _ in fields(Tables))))
        self.deployed: DeployedAgent = deployed(agent, guild_id=self.guild, bot_id=self.bot)
        assert self.engine.apply_routing(routing(self.guild, self.deployed))

    @property
    def deployment_id(self) -> Any:
        return self.deployed.deployment.deployment_id

    def say(self, author: dict[str, Any], content: str, at: datetime = T0) -> EventEnvelope:
        return message_event(Where(self.bot, self.guild, self.channel), author, content, at)

    def slash(self, invoker: dict[str, Any], name: str, **options: str) -> EventEnvelope:
        return slash_event(Where(self.bot, self.guild, self.channel), invoker, name, options)

    def run(self, event: EventEnvelope) -> Outputs:
        return self.engine.handle_event(event)

    def answer(self, event: EventEnvelope) -> str:
        [action] = self.run(event).actions
        assert isinstance(action, Reply | InteractionResponse)
        return shown(action)

    def book(self) -> GameBook:
        return self.engine.tables.games[GamesKey(self.guild).encode()]

    def record(self, player: dict[str, Any]) -> GameRecord | None:
        key = GameRecordKey(self.guild, self.deployment_id, player["id"]).encode()
        return self.engine.tables.game_records.get(key)

    def board(self) -> list[tuple[str, int]]:
        board = self.engine.tables.game_boards.get(GameBoardKey(self.guild, self.deployment_id).encode())
        return [(e.user_id, e.score) for e in board.entries] if board is not None else []


def shown(action: Reply | InteractionResponse | SendMessage) -> str:
    """The text of an answer, plain or in an embed."""
    return action.content or (action.embed.description if action.embed is not None else "")


def games_agent(**changes: Any) -> AgentConfig:
    return agent_with(
        AgentMode.utility,
        name="Arcade",
        enabled_tools=["games"],
        enabled_commands=GAMES,
        games={"idle_timeout_s": IDLE_S},
        **changes,
    )


def counts(found: GameRecord | None) -> tuple[int, int, int]:
    """(wins, losses, draws)"""
    return (found.wins, found.losses, found.draws) if found is not None else (0, 0, 0)


def test_dice_and_coins_are_decided_by_the_event() -> None:
    def roll(dice: str) -> Invocation:
        member, origin = DiscordUser(id=KAI["id"], username="kai"), MessageOrigin(snowflake(), snowflake())
        return Invocation("roll", {"dice": dice}, member, snowflake(), snowflake(), 0, (), T0, origin)

    three = chance(roll("3d6"), seeded_rng("evt", "dep"))
    assert three == chance(roll("3d6"), seeded_rng("evt", "dep"))
    assert 3 <= int(three.text.rsplit("= ", 1)[1]) <= 18
    assert chance(roll("0d6"), seeded_rng("x")).ephemeral


def test_rock_paper_scissors_against_the_agent_is_decided_by_the_event_and_counted_once() -> None:
    table = Table(games_agent())
    event = table.slash(KAI, "rps", choice="rock")
    first = table.run(event)
    [answer] = first.actions
    assert isinstance(answer, InteractionResponse) and shown(answer).startswith("You: 🪨 rock · Arcade: ")
    theirs = shown(answer).split("Arcade: ", 1)[1].split(" ", 2)[1]
    assert theirs in MOVES
    expected = {Result.win: (1, 0, 0), Result.loss: (0, 1, 0), Result.draw: (0, 0, 1)}[judge("rock", theirs)]
    assert counts(table.record(KAI)) == expected
    # Redelivered: the same answer under the same action id (the gateway performs it once), counted once.
    [again] = table.run(event).actions
    assert isinstance(again, InteractionResponse)
    assert (again.action_id, shown(again)) == (answer.action_id, shown(answer))
    assert counts(table.record(KAI)) == expected
    assert table.answer(table.slash(KAI, "rps", choice="lizard")) == "Choose rock, paper or scissors."


def test_a_challenge_between_members_is_answered_decided_and_recorded_once() -> None:
    table = Table(games_agent())
    challenge = table.say(KAI, f"!rps <@{MIA['id']}> rock")
    assert table.answer(challenge) == (
        f"<@{MIA['id']}>, <@{KAI['id']}> challenges you to rock-paper-scissors! "
        "Answer with !rps and your move within 1m."
    )
    [waiting] = table.book().challenges
    assert waiting.challenger_move == "rock" and waiting.expires_at == T0 + timedelta(seconds=IDLE_S)
    assert "not answered your challenge" in table.answer(table.say(KAI, f"!rps <@{MIA['id']}> paper"))
    assert "can't challenge yourself" in table.answer(table.say(KAI, f"!rps <@{KAI['id']}> paper"))

    reply = table.slash(MIA, "rps", choice="paper")
    assert table.answer(reply) == f"<@{KAI['id']}>: 🪨 rock · <@{MIA['id']}>: 📄 paper — <@{MIA['id']}> wins!"
    assert table.book().challenges == []
    assert counts(table.record(MIA)) == (1, 0, 0) and counts(table.record(KAI)) == (0, 1, 0)
    assert table.board() == [(MIA["id"], 1)]
    # The redelivered answer finds its event applied: nothing said, nothing counted again.
    assert not table.run(reply)
    assert counts(table.record(MIA)) == (1, 0, 0) and table.board() == [(MIA["id"], 1)]
    wins = table.answer(table.slash(MIA, "wins"))
    assert wins == f"1. <@{MIA['id']}> — 1 win\nYou: 1 wins · 0 losses · 0 draws"


def test_hangman_is_won_by_the_player_who_completes_the_word() -> None:
    table = Table(games_agent())
    start = table.slash(KAI, "hangman")
    opened = table.answer(start)
    [game] = table.book().hangman
    assert opened.startswith(f"🎯 Hangman! `{' '.join('_' * len(game.word))}` ({len(game.word)} letters)")
    assert "already running" in table.answer(table.slash(MIA, "hangman"))
    assert not table.run(start)  # redelivered: still one game
    assert len(table.book().hangman) == 1

    wrong = next(letter for letter in "zqxjkvwy" if letter not in game.word)
    miss = table.say(MIA, f"!guess {wrong}", at=T0 + timedelta(seconds=30))
    assert table.answer(miss).startswith(f"No. {MAX_MISSES - 1} misses left.")
    assert not table.run(miss)  # redelivered: the miss is counted once
    [moved] = table.book().hangman
    assert moved.misses == 1 and moved.expires_at == T0 + timedelta(seconds=30 + IDLE_S)
    assert "already guessed" in table.answer(table.say(MIA, f"!guess {wrong}"))

    letters = list(dict.fromkeys(game.word))
    for letter in letters[:-1]:
        assert table.answer(table.say(KAI, f"!guess {letter}")).startswith("Yes!")
    last = table.say(MIA, f"!guess {letters[-1]}")
    assert table.answer(last) == f"🎉 <@{MIA['id']}> solved it: **{game.word}**!"
    assert table.book().hangman == []
    assert counts(table.record(MIA)) == (1, 0, 0) and counts(table.record(KAI)) == (0, 0, 0)
    assert not table.run(last)
    assert counts(table.record(MIA)) == (1, 0, 0)
    assert "No hangman game" in table.answer(table.slash(KAI, "guess", guess="e"))


def test_hangman_is_lost_after_the_last_miss_and_a_whole_word_may_be_guessed() -> None:
    table = Table(games_agent())
    table.run(table.slash(KAI, "hangman"))
    [game] = table.book().hangman
    wrong = [letter for letter in "zqxjkvwyfb" if letter not in game.word]
    for letter in wrong[: MAX_MISSES - 1]:
        table.run(table.say(KAI, f"!guess {letter}"))
    assert (
        table.answer(table.say(KAI, "!guess notaword")) == f"💀 Out of guesses! The word was **{game.word}**."
    )
    assert counts(table.record(KAI)) == (0, 1, 0)

    table.run(table.say(MIA, "!hangman"))
    [second] = table.book().hangman
    assert (
        table.answer(table.say(MIA, f"!guess {second.word}"))
        == f"🎉 <@{MIA['id']}> solved it: **{second.word}**!"
    )


def test_the_timer_ends_games_nobody_moved_in() -> None:
    table = Table(games_agent())
    table.run(table.say(KAI, "!hangman"))
    table.run(table.say(KAI, f"!rps <@{MIA['id']}> scissors", at=T0 + timedelta(seconds=10)))
    [game] = table.book().hangman
    assert not table.engine.end_idle_games(table.guild, T0 + timedelta(seconds=IDLE_S - 1))
    hangman_over = table.engine.end_idle_games(table.guild, T0 + timedelta(seconds=IDLE_S))
    [ended] = hangman_over.actions
    assert isinstance(ended, SendMessage) and ended.channel_id == table.channel and ended.bot_id == table.bot
    assert shown(ended) == f"⌛ Hangman ended: nobody guessed in time. The word was **{game.word}**."
    assert table.book().hangman == [] and len(table.book().challenges) == 1
    challenge_over = table.engine.end_idle_games(table.guild, T0 + timedelta(seconds=IDLE_S + 10))
    [expired] = challenge_over.actions
    assert isinstance(expired, SendMessage)
    assert shown(expired) == f"⌛ <@{MIA['id']}> did not answer <@{KAI['id']}>'s challenge in time."
    assert not table.engine.end_idle_games(table.guild, T0 + timedelta(hours=1))
    # The challenge is gone: Mia's move now plays the agent.
    assert table.answer(table.say(MIA, "!rps rock")).startswith("You: 🪨 rock · Arcade:")


def luna_playing() -> AgentConfig:
    data = luna().model_dump(mode="json")
    commands = [*data["enabled_commands"], *GAMES]
    return AgentConfig.model_validate({**data, "enabled_commands": commands, "channels": {}})


def test_the_eight_ball_answers_in_the_characters_voice_and_mood() -> None:
    table = Table(luna_playing())
    event = table.slash(KAI, "8ball", question="Will I win the tournament?")
    [action] = table.run(event).actions
    assert isinstance(action, InteractionResponse) and action.embed is None
    answer = action.content
    assert answer.startswith("🎱 ") and answer == table.answer(event)  # the same answer every time
    casual = [phrase for phrases in EIGHT_BALL.values() for phrase in phrases["casual"]]
    assert any(phrase.rstrip(".") in answer for phrase in casual)
    mood_key = MoodKey(table.guild, table.deployment_id).encode()
    table.engine.tables.moods[mood_key] = MoodState(
        mood=MoodName.sad, valence=-0.8, energy=0.4, updated_at=T0
    )
    sad = table.answer(table.slash(KAI, "8ball", question="Will it rain?"))
    # Styling may end a sentence in one of Luna's enders and add emoji after it: the shake's first words stay.
    assert any(sad.startswith(f"🎱 {shake.split('.')[0]}") for shake in SHAKES[MoodName.sad])

    plain = Table(games_agent())
    neutral = [phrase for phrases in EIGHT_BALL.values() for phrase in phrases["neutral"]]
    assert plain.answer(plain.slash(KAI, "8ball", question="Should I?"))[2:] in neutral


@pytest.mark.parametrize("name", ["rps", "8ball", "guess"])
def test_a_game_command_without_its_option_names_it(name: str) -> None:
    table = Table(games_agent())
    assert "is missing" in table.answer(table.slash(KAI, name))


def test_a_board_written_before_it_held_wins_reads_its_xp_as_the_score() -> None:
    board = Leaderboard.model_validate_json('{"entries": [{"user_id": "44", "xp": 120}]}')
    assert board.entries[0].score == 120 and board.model_dump()["entries"] == [
        {"user_id": "44", "score": 120}
    ]
