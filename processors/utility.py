"""Utility commands: reminders (fired by the worker's timer) and polls (Discord's native poll; its results
are announced when Discord closes it); custom commands from the agent's templates."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from models.actions import NativePoll
from models.agent import CustomCommand
from models.discord import PollMessage
from models.processor_state import Reminder, UtilityBook, fits_in_table
from processors.commands import Invocation, describe_duration
from processors.emit import Emitter, Notice, Say
from processors.outcome import Outcome

MAX_REMINDERS = 500
MAX_REMINDERS_PER_USER = 25
# Discord's limits on a poll.
MAX_POLL_ANSWERS = 10
MAX_QUESTION = 300
MAX_ANSWER = 55
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
        if not fits_in_table(updated):
            return Outcome(Say("This server's reminders hold too much text already.", ephemeral=True))
        return Outcome(
            Say(f"I'll remind you in {describe_duration(seconds)}: {text}", title="Reminder"), state=updated
        )
    if invocation.name == "poll":
        question, *choices = [part.strip() for part in invocation.text("question").split("|")]
        choices = [c for c in choices if c]
        if not question or not 2 <= len(choices) <= MAX_POLL_ANSWERS:
            return Outcome(
                Say(
                    f"Write the question and 2 to {MAX_POLL_ANSWERS} options: question | a | b",
                    ephemeral=True,
                )
            )
        poll = NativePoll(question=question[:MAX_QUESTION], answers=[c[:MAX_ANSWER] for c in choices])
        return Outcome(Say(f"📊 {poll.question}", title="Poll", poll=poll))
    raise ValueError(f"not a utility command: {invocation.name}")


def take_due_reminders(book: UtilityBook, now: datetime) -> tuple[list[Reminder], UtilityBook]:
    """The reminders due at `now`, and the book without them."""
    due = [r for r in book.reminders if r.due_at <= now]
    return due, UtilityBook(reminders=[r for r in book.reminders if r.due_at > now])


def reminder_notice(reminder: Reminder) -> Notice:
    say = Say(f"⏰ <@{reminder.user_id}> {reminder.text}", title="Reminder")
    return Notice(
        f"reminder:{reminder.reminder_id}",
        str(reminder.deployment_id),
        reminder.guild_id,
        reminder.channel_id,
        say,
        reminder.user_id,
    )


def poll_results(message: PollMessage) -> Say | None:
    """The announcement of a poll that Discord has closed (its final results); None while it runs."""
    poll = message.poll
    if poll is None or poll.results is None or not poll.results.is_finalized:
        return None
    counts = {count.id: count.count for count in poll.results.answer_counts}
    tally = [(counts.get(a.answer_id, 0), a.poll_media.text) for a in poll.answers]
    total = sum(n for n, _ in tally)
    lines = [f"{text}: {n} vote{'s' if n != 1 else ''}" for n, text in tally]
    top = max((n for n, _ in tally), default=0)
    leaders = [text for n, text in tally if n == top]
    if total == 0:
        verdict = "No votes."
    elif len(leaders) == 1:
        verdict = f"Winner: {leaders[0]}"
    else:
        verdict = f"Tie: {', '.join(leaders)}"
    return Say(
        f"📊 Poll closed: {poll.question.text}\n" + "\n".join(lines) + f"\n{verdict}", title="Poll results"
    )


def render_custom(command: CustomCommand, invocation: Invocation, agent_name: str, guild_name: str) -> Say:
    """{user}, {args}, {agent} and {guild} are filled in; nothing else in the template is interpreted."""
    values = {
        "user": f"<@{invocation.user.id}>",
        "args": invocation.text("args"),
        "agent": agent_name,
        "guild": guild_name,
    }
    return Say(_PLACEHOLDER.sub(lambda m: values[m.group(1)], command.template)[:2000], title=command.name)
