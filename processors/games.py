"""Games: dice and coins, rock-paper-scissors against the agent or another member, an 8-ball that answers in
the character's voice, and hangman per channel; wins on a board per deployment.

All randomness comes from the event (`seeded_rng`), so a replay plays the same game. Running games live in
the guild's GameBook, which remembers the events applied to it: a redelivered move changes nothing. A timer
ends the games nobody moved in for the agent's idle timeout.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from models.agent import AgentConfig, MoodName
from models.processor_state import (
    MAX_CHALLENGES,
    ChannelGame,
    GameBook,
    GameRecord,
    HangmanGame,
    Leaderboard,
    RpsChallenge,
    RpsMove,
)
from models.state import MoodState
from processors.commands import Invocation, describe_duration
from processors.emit import Emitter, InteractionOrigin, Notice, Say
from processors.outcome import Outcome, remember_applied
from processors.styling import style_text

_DICE = re.compile(r"^\s*(\d{0,3})d(\d{1,4})\s*$", re.IGNORECASE)

MOVES: tuple[RpsMove, ...] = ("rock", "paper", "scissors")
MOVE_EMOJI: dict[RpsMove, str] = {"rock": "🪨", "paper": "📄", "scissors": "✂️"}
# What each move beats.
BEATS: dict[RpsMove, RpsMove] = {"rock": "scissors", "paper": "rock", "scissors": "paper"}

MAX_MISSES = 6
HANGMAN_WORDS = (
    "anime", "arcade", "banana", "castle", "dragon", "galaxy", "guitar", "harbor", "island", "jungle",
    "kitten", "lantern", "meadow", "nebula", "ocean", "pirate", "planet", "puzzle", "rocket", "sunset",
    "thunder", "volcano", "wizard", "zephyr", "compass", "crystal", "dolphin", "festival", "horizon",
    "journey", "library", "mystery", "noodle", "orchestra", "penguin", "quest", "rainbow", "sapphire",
    "teapot", "umbrella", "velvet", "whisper", "blossom", "cactus", "dungeon", "emerald", "firefly",
    "glacier", "hammock", "marble", "origami", "pancake", "quartz", "saturn", "tornado", "vinyl",
)  # fmt: skip


class Answer(StrEnum):
    yes = "yes"
    maybe = "maybe"
    no = "no"


# The 8-ball's answers by kind and by how formally the character speaks.
EIGHT_BALL: dict[Answer, dict[str, tuple[str, ...]]] = {
    Answer.yes: {
        "casual": ("Totally, yes.", "For sure.", "Yep, no doubt.", "100% yes."),
        "neutral": ("It is certain.", "Yes, definitely.", "Signs point to yes.", "Most likely."),
        "formal": ("It is decidedly so.", "Without a doubt.", "You may rely on it.", "The outlook is good."),
    },
    Answer.maybe: {
        "casual": ("Hmm, ask me later.", "Can't tell right now.", "Kinda fuzzy, try again."),
        "neutral": ("Reply hazy, try again.", "Better not tell you now.", "Cannot predict now."),
        "formal": ("I cannot say at present.", "Please ask again later.", "That remains to be seen."),
    },
    Answer.no: {
        "casual": ("Nope.", "Not a chance.", "Nah, don't count on it."),
        "neutral": ("Don't count on it.", "My sources say no.", "Very doubtful."),
        "formal": ("I would not count on it.", "My reply is no.", "The outlook is not so good."),
    },
}
# How the character shakes the ball, by mood.
SHAKES: dict[MoodName, tuple[str, ...]] = {
    MoodName.excited: ("Ooh, ooh, let me shake it!", "*shakes the ball wildly*", "Eee, okay!"),
    MoodName.happy: ("Let's see what it says.", "*gives the ball a cheerful shake*", "Hehe, okay."),
    MoodName.neutral: ("Let me see.", "*shakes the ball*", "Hmm."),
    MoodName.sad: ("Oh... if you want.", "*shakes the ball slowly*", "Sigh. Okay..."),
    MoodName.bored: ("Meh, fine.", "*shakes the ball without looking*", "Ugh. Okay."),
}
# How the mood leans the answer (weights of yes, maybe, no): a cheerful character sees brighter futures.
ANSWER_WEIGHTS: dict[MoodName, tuple[int, int, int]] = {
    MoodName.excited: (6, 2, 2),
    MoodName.happy: (5, 3, 2),
    MoodName.neutral: (2, 1, 1),
    MoodName.sad: (2, 3, 5),
    MoodName.bored: (3, 4, 3),
}


class Result(StrEnum):
    win = "win"
    loss = "loss"
    draw = "draw"


OPPOSITE = {Result.win: Result.loss, Result.loss: Result.win, Result.draw: Result.draw}


@dataclass(frozen=True)
class GameOutcome(Outcome[GameBook]):
    """A move's answer, the book after it (None: unchanged) and the results it decided, by user."""

    results: tuple[tuple[str, Result], ...] = ()


@dataclass(frozen=True)
class GameState:
    """What a game command reads: the guild's running games, the invoker's record, the deployment's board and
    the agent's mood (with the emoji that shows it)."""

    book: GameBook | None
    record: GameRecord | None
    board: Leaderboard | None
    mood: MoodState
    mood_emoji: str


@dataclass(frozen=True)
class Move:
    """A command that may change the running games: the book it reads, when the game it touches expires if
    nobody moves again, and the prefix its hints show (`/` for slash commands)."""

    invocation: Invocation
    book: GameBook
    emit: Emitter
    expires_at: datetime
    prefix: str

    @property
    def deployment_id(self) -> UUID:
        return self.emit.deployed.deployment.deployment_id

    def opened(self) -> dict[str, Any]:
        """The fields of a game this command opens: started by this event, here, ending if nobody moves."""
        deployment = self.emit.deployed.deployment
        return {
            "game_id": self.emit.cause_id,
            "deployment_id": deployment.deployment_id,
            "bot_id": deployment.bot_id,
            "guild_id": self.invocation.guild_id,
            "channel_id": self.invocation.channel_id,
            "expires_at": self.expires_at,
        }

    def changed(self, **changes: object) -> GameBook:
        """The book with `changes`, remembering this event so that its redelivery changes nothing."""
        applied = remember_applied(self.book.applied, self.emit.cause_id)
        return self.book.model_copy(update={**changes, "applied": applied})


def handle_games(
    invocation: Invocation, state: GameState, emit: Emitter, rng: random.Random, idle_timeout_s: int
) -> GameOutcome:
    book = state.book or GameBook()
    if emit.cause_id in book.applied:
        return GameOutcome(None)  # a redelivered move was answered the first time
    name = invocation.name
    if name in ("roll", "coinflip"):
        return GameOutcome(chance(invocation, rng))
    if name == "8ball":
        return GameOutcome(eight_ball(emit.agent, state.mood, state.mood_emoji, rng, emit.cause_id))
    if name == "wins":
        return GameOutcome(wins(state.record, state.board))
    move = Move(
        invocation,
        book,
        emit,
        expires_at=invocation.at + timedelta(seconds=idle_timeout_s),
        prefix="/" if isinstance(invocation.origin, InteractionOrigin) else emit.agent.command_prefix,
    )
    if name == "rps":
        return rock_paper_scissors(move, rng)
    if name == "hangman":
        return start_hangman(move, rng)
    if name == "guess":
        return guess(move)
    raise ValueError(f"not a game command: {name}")


def chance(invocation: Invocation, rng: random.Random) -> Say:
    if invocation.name == "coinflip":
        return Say(f"🪙 {rng.choice(['Heads', 'Tails'])}!", title="Coin flip")
    match = _DICE.match(invocation.text("dice") or "1d6")
    if match is None:
        return Say("Roll dice like 2d6 or d20.", ephemeral=True)
    count, sides = int(match.group(1) or 1), int(match.group(2))
    if not (1 <= count <= 100 and 2 <= sides <= 1000):
        return Say("Up to 100 dice with 2 to 1000 sides.", ephemeral=True)
    rolls = [rng.randint(1, sides) for _ in range(count)]
    shown = " + ".join(map(str, rolls)) + (f" = {sum(rolls)}" if count > 1 else "")
    return Say(f"🎲 {shown}", title="Dice")


# 8-ball -------------------------------------------------------------------------------------------------


def eight_ball(agent: AgentConfig, mood: MoodState, mood_emoji: str, rng: random.Random, seed: str) -> Say:
    """The classic answers, in the character's voice: its formality picks the phrasing, its mood leans the
    answer and shakes the ball, and its speech style (enders, slang, emoji) is applied as to any reply."""
    character = agent.character
    if character is None:
        answer = rng.choices(list(Answer), weights=ANSWER_WEIGHTS[MoodName.neutral])[0]
        return Say(f"🎱 {rng.choice(EIGHT_BALL[answer]['neutral'])}", title="Magic 8-ball")
    style = character.speech_style
    answer = rng.choices(list(Answer), weights=ANSWER_WEIGHTS[mood.mood])[0]
    text = f"{rng.choice(SHAKES[mood.mood])} {rng.choice(EIGHT_BALL[answer][style.formality])}"
    voiced = style_text(text, style, mood.mood, mood_emoji, seed=seed)
    return Say(f"🎱 {voiced}", title=f"{character.name}'s 8-ball")


# Rock-paper-scissors ------------------------------------------------------------------------------------


def parse_move(text: str) -> RpsMove | None:
    """ "rock", "Paper", "s" or the move's emoji; None for anything else."""
    given = text.strip().lower()
    return next((m for m in MOVES if given in (m, m[0], MOVE_EMOJI[m])), None)


def judge(first: RpsMove, second: RpsMove) -> Result:
    """The first player's result."""
    if first == second:
        return Result.draw
    return Result.win if BEATS[first] == second else Result.loss


def _shown(move: RpsMove) -> str:
    return f"{MOVE_EMOJI[move]} {move}"


def rock_paper_scissors(move: Move, rng: random.Random) -> GameOutcome:
    """Answer the challenge waiting for the invoker (from the named member, or the oldest), else challenge
    the named member, else play the agent."""
    invocation, agent = move.invocation, move.emit.agent
    mine = parse_move(invocation.text("choice"))
    if mine is None:
        return GameOutcome(Say("Choose rock, paper or scissors.", ephemeral=True))
    me, named = invocation.user.id, invocation.text("opponent")
    here = [
        c
        for c in move.book.challenges
        if c.deployment_id == move.deployment_id and c.channel_id == invocation.channel_id
    ]
    waiting = next((c for c in here if c.opponent_id == me and named in ("", c.challenger_id)), None)
    if waiting is not None:
        return _answer_challenge(move, waiting, mine)
    if named and named != move.emit.deployed.deployment.bot_id:
        if named == me:
            return GameOutcome(Say("You can't challenge yourself.", ephemeral=True))
        if any(c.challenger_id == me and c.opponent_id == named for c in here):
            return GameOutcome(Say(f"<@{named}> has not answered your challenge yet.", ephemeral=True))
        return _challenge(move, named, mine)
    theirs = rng.choice(MOVES)
    result = judge(mine, theirs)
    verdict = {Result.win: "you win!", Result.loss: f"{agent.name} wins!", Result.draw: "a draw."}[result]
    text = f"You: {_shown(mine)} · {agent.name}: {_shown(theirs)} — {verdict}"
    return GameOutcome(Say(text, title="Rock-paper-scissors"), results=((me, result),))


def _challenge(move: Move, opponent: str, mine: RpsMove) -> GameOutcome:
    invocation = move.invocation
    if len(move.book.challenges) >= MAX_CHALLENGES:
        return GameOutcome(Say("Too many challenges are open; try again later.", ephemeral=True))
    me = invocation.user.id
    challenge = RpsChallenge(**move.opened(), challenger_id=me, opponent_id=opponent, challenger_move=mine)
    wait = describe_duration(round((move.expires_at - invocation.at).total_seconds()))
    text = (
        f"<@{opponent}>, <@{me}> challenges you to rock-paper-scissors! "
        f"Answer with {move.prefix}rps and your move within {wait}."
    )
    updated = move.changed(challenges=[*move.book.challenges, challenge])
    return GameOutcome(Say(text, title="Rock-paper-scissors"), state=updated)


def _answer_challenge(move: Move, challenge: RpsChallenge, answer: RpsMove) -> GameOutcome:
    challenger, opponent = challenge.challenger_id, challenge.opponent_id
    result = judge(challenge.challenger_move, answer)
    verdict = {
        Result.win: f"<@{challenger}> wins!",
        Result.loss: f"<@{opponent}> wins!",
        Result.draw: "a draw.",
    }[result]
    text = (
        f"<@{challenger}>: {_shown(challenge.challenger_move)} · <@{opponent}>: {_shown(answer)} — {verdict}"
    )
    updated = move.changed(challenges=[c for c in move.book.challenges if c.game_id != challenge.game_id])
    results = ((challenger, result), (opponent, OPPOSITE[result]))
    return GameOutcome(Say(text, title="Rock-paper-scissors"), state=updated, results=results)


# Hangman ------------------------------------------------------------------------------------------------


def masked(game: HangmanGame) -> str:
    return " ".join(letter if letter in game.guessed else "_" for letter in game.word)


def _hangman_here(move: Move) -> HangmanGame | None:
    channel_id = move.invocation.channel_id
    return next(
        (
            g
            for g in move.book.hangman
            if g.deployment_id == move.deployment_id and g.channel_id == channel_id
        ),
        None,
    )


def start_hangman(move: Move, rng: random.Random) -> GameOutcome:
    running = _hangman_here(move)
    if running is not None:
        return GameOutcome(Say(f"A game is already running here: `{masked(running)}`", ephemeral=True))
    game = HangmanGame(**move.opened(), word=rng.choice(HANGMAN_WORDS))
    text = (
        f"🎯 Hangman! `{masked(game)}` ({len(game.word)} letters). Guess a letter or the word with "
        f"{move.prefix}guess; {MAX_MISSES} misses and it's over."
    )
    return GameOutcome(Say(text, title="Hangman"), state=move.changed(hangman=[*move.book.hangman, game]))


def guess(move: Move) -> GameOutcome:
    game = _hangman_here(move)
    if game is None:
        text = f"No hangman game is running here; start one with {move.prefix}hangman."
        return GameOutcome(Say(text, ephemeral=True))
    attempt = move.invocation.text("guess").strip().lower()
    if not attempt.isascii() or not attempt.isalpha():
        return GameOutcome(Say("Guess one letter, or the whole word.", ephemeral=True))
    if len(attempt) == 1 and attempt in game.guessed:
        return GameOutcome(Say(f"{attempt} was already guessed: `{masked(game)}`", ephemeral=True))
    player = move.invocation.user.id
    guessed = [*game.guessed, attempt] if len(attempt) == 1 else game.guessed
    solved = attempt == game.word or set(game.word) <= set(guessed)
    hit = solved or (len(attempt) == 1 and attempt in game.word)
    misses = game.misses + (0 if hit else 1)
    others = [g for g in move.book.hangman if g.game_id != game.game_id]
    if solved:
        say = Say(f"🎉 <@{player}> solved it: **{game.word}**!", title="Hangman")
        return GameOutcome(say, state=move.changed(hangman=others), results=((player, Result.win),))
    if misses >= MAX_MISSES:
        say = Say(f"💀 Out of guesses! The word was **{game.word}**.", title="Hangman")
        return GameOutcome(say, state=move.changed(hangman=others), results=((player, Result.loss),))
    moved = game.model_copy(update={"guessed": guessed, "misses": misses, "expires_at": move.expires_at})
    verdict = "Yes!" if hit else f"No. {MAX_MISSES - misses} misses left."
    say = Say(f"{verdict} `{masked(moved)}`", title="Hangman")
    return GameOutcome(say, state=move.changed(hangman=[*others, moved]))


# Timeouts -----------------------------------------------------------------------------------------------


def end_idle_games(book: GameBook, now: datetime) -> tuple[list[Notice], GameBook]:
    """What is said of the games nobody moved in until `now`, and the book without them."""
    hangman = [
        _ended(g, f"⌛ Hangman ended: nobody guessed in time. The word was **{g.word}**.", "Hangman")
        for g in book.hangman
        if g.expires_at <= now
    ]
    challenges = [
        _ended(
            c,
            f"⌛ <@{c.opponent_id}> did not answer <@{c.challenger_id}>'s challenge in time.",
            "Rock-paper-scissors",
        )
        for c in book.challenges
        if c.expires_at <= now
    ]
    remaining = book.model_copy(
        update={
            "hangman": [g for g in book.hangman if g.expires_at > now],
            "challenges": [c for c in book.challenges if c.expires_at > now],
        }
    )
    return [*hangman, *challenges], remaining


def _ended(game: ChannelGame, text: str, title: str) -> Notice:
    say = Say(text, title=title)
    # A challenge's end names both players: it is sealed under the challenger's key, who started it.
    about = game.challenger_id if isinstance(game, RpsChallenge) else None
    return Notice(
        f"game-timeout:{game.game_id}", str(game.deployment_id), game.guild_id, game.channel_id, say, about
    )


# Results ------------------------------------------------------------------------------------------------


def tally(record: GameRecord | None, result: Result, event_id: str) -> GameRecord | None:
    """The record after one result, or None when the event was already counted."""
    current = record or GameRecord()
    if event_id in current.applied:
        return None
    field = {Result.win: "wins", Result.loss: "losses", Result.draw: "draws"}[result]
    return current.model_copy(
        update={field: getattr(current, field) + 1, "applied": remember_applied(current.applied, event_id)}
    )


def wins(record: GameRecord | None, board: Leaderboard | None) -> Say:
    mine = record or GameRecord()
    lines = [
        f"{position}. <@{e.user_id}> — {e.score} win{'s' if e.score != 1 else ''}"
        for position, e in enumerate(board.entries if board is not None else [], start=1)
    ] or ["Nobody has won a game yet."]
    lines.append(f"You: {mine.wins} wins · {mine.losses} losses · {mine.draws} draws")
    return Say("\n".join(lines), title="Game wins")
