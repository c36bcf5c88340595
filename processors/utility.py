"""Utility commands: reminders (fired by the worker's timer) and polls (a message plus number reactions);
custom commands from the agent's templates."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from models.actions import React
from models.agent import CustomCommand
from models.processor_state import MAX_POLL_OPTIONS, Poll, Reminder, UtilityBook
from processors.commands import Invocation, describe_duration
from processors.emit import Emitter, Notice, Say
from processors.outcome import Outcome

MAX_REMINDERS = 500
MAX_REMINDERS_PER_USER = 25
# The bot's own poll message normally arrives within a second; a poll not seen by then is dropped.
POLL_TTL = timedelta(minutes=10)
KEYCAPS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣", "9️⃣", "🔟")
_PLACEHOLDER = re.compile(r"\{(user|args|agent|guild)\}")


def handle_utility(invocation: Invocation, book: UtilityBook | None, emit: Emitter) -> Outcome[UtilityBook]:
    current = book or UtilityBook()
    deployment = emit.deployed.deployment
    if invocation.name == "remind":
        if any(r.reminder_id == emit.cause_id for r in current.reminders):
            return Outcome(None)
        mine = [r for r in current.reminders if r.user_id == invocation.user.id]
        if len(mine) >= MAX_REMINDERS_PER_USER or len(current.reminders) >= MAX_REMINDERS:
            return Outcome(Say("You have too many reminders already.", ephemeral=True))
        seconds = invocation.number("when") or 0
        text = invocation.text("text")
        reminder = Reminder(
            reminder_id=emit.cause_id,
            deployment_id=deployment.deployment_id,
            bot_id=deployment.bot_id,
            guild_id=invocation.guild_id,
            channel_id=invocation.channel_id,
            user_id=invocation.user.id,
            due_at=invocation.at + timedelta(seconds=seconds),
            text=text[:1900],
        )
        updated = current.model_copy(update={"reminders": [*current.reminders, reminder]})
        return Outcome(
            Say(f"I'll remind you in {describe_duration(seconds)}: {text}", title="Reminder"), state=updated
        )
    if invocation.name == "poll":
        question, *choices = [part.strip() for part in invocation.text("question").split("|")]
        choices = [c for c in choices if c]
        if not question or not 2 <= len(choices) <= MAX_POLL_OPTIONS:
            return Outcome(
                Say(
                    f"Write the question and 2 to {MAX_POLL_OPTIONS} options: question | a | b",
                    ephemeral=True,
                )
            )
        if any(p.poll_id == emit.cause_id for p in current.polls):
            return Outcome(None)
        marker = f"📊 {question}"[:200]
        poll = Poll(
            poll_id=emit.cause_id,
            deployment_id=deployment.deployment_id,
            bot_id=deployment.bot_id,
            guild_id=invocation.guild_id,
            channel_id=invocation.channel_id,
            marker=marker,
            options=[c[:200] for c in choices],
            created_at=invocation.at,
        )
        live = [p for p in current.polls if p.created_at > invocation.at - POLL_TTL]
        updated = current.model_copy(update={"polls": [*live, poll]})
        lines = "\n".join(f"{KEYCAPS[i]} {choice}" for i, choice in enumerate(poll.options))
        return Outcome(Say(f"{marker}\n{lines}", title=marker), state=updated)
    raise ValueError(f"not a utility command: {invocation.name}")


def take_due_reminders(book: UtilityBook, now: datetime) -> tuple[list[Reminder], UtilityBook]:
    """The reminders due at `now`, and the book without them and without polls whose message never came."""
    due = [r for r in book.reminders if r.due_at <= now]
    remaining = UtilityBook(
        reminders=[r for r in book.reminders if r.due_at > now],
        polls=[p for p in book.polls if p.created_at > now - POLL_TTL],
    )
    return due, remaining


def reminder_notice(reminder: Reminder) -> Notice:
    say = Say(f"⏰ <@{reminder.user_id}> {reminder.text}", title="Reminder")
    return Notice(
        f"reminder:{reminder.reminder_id}",
        str(reminder.deployment_id),
        reminder.guild_id,
        reminder.channel_id,
        say,
    )


def poll_reactions(
    book: UtilityBook | None, emit: Emitter, channel_id: str, message_id: str, headings: list[str]
) -> tuple[list[React], UtilityBook | None]:
    """When the bot's own message is a pending poll (its first line or embed title is the poll's marker), the
    number reactions for it and the book without the poll."""
    if book is None:
        return [], None
    bot_id = emit.deployed.deployment.bot_id
    poll = next(
        (p for p in book.polls if p.bot_id == bot_id and p.channel_id == channel_id and p.marker in headings),
        None,
    )
    if poll is None:
        return [], None
    reactions = [
        emit.action(React, channel_id=channel_id, message_id=message_id, emoji=KEYCAPS[index])
        for index in range(len(poll.options))
    ]
    return reactions, book.model_copy(update={"polls": [p for p in book.polls if p.poll_id != poll.poll_id]})


def render_custom(command: CustomCommand, invocation: Invocation, agent_name: str, guild_name: str) -> Say:
    """{user}, {args}, {agent} and {guild} are filled in; nothing else in the template is interpreted."""
    values = {
        "user": f"<@{invocation.user.id}>",
        "args": invocation.text("args"),
        "agent": agent_name,
        "guild": guild_name,
    }
    return Say(_PLACEHOLDER.sub(lambda m: values[m.group(1)], command.template)[:2000], title=command.name)
