"""Announcements (/announce): a text, or one of the agent's templates, posted to the announcement channel now
or at a local time of the agent's time zone; in an announcement channel (Discord's type 5) crossposted to
the channels following it. Moderators and the owner only, as for moderation commands.

A scheduled announcement is table state until the announcement timer posts it, once: the timer takes it
from the book with the same write that produces its message, and the message's ids derive from the
/announce event, so a post a crash repeats is performed once by the gateway. The book remembers the
/announce events it took, so a redelivered one schedules nothing again. A template's placeholders
(models/agent.py: ANNOUNCEMENT_PLACEHOLDERS) are filled in when it is posted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from models.actions import SendMessage
from models.agent import BRACED_PLACEHOLDER, AnnouncementsConfig, clock_time
from models.processor_state import AnnouncementBook, ScheduledAnnouncement, fits_in_table
from processors.commands import Invocation, missing_permission
from processors.emit import Emitter, Say
from processors.outcome import Outcome, remember_applied

# Discord's announcement (news) channel type: only its messages can be crossposted.
ANNOUNCEMENT_CHANNEL = 5
MAX_SCHEDULED = 100
TITLE = "Announcement"


@dataclass(frozen=True)
class Where:
    """Where and how an agent announces in a guild."""

    # The announcement channel resolved in the guild; None when the configured one is not there.
    channel_id: str | None
    config: AnnouncementsConfig
    zone: ZoneInfo
    # How the command is written back to the user ("/" or the agent's prefix).
    shown: str


def next_time(after: datetime, clock: str, zone: ZoneInfo) -> datetime:
    """The first moment after `after` at which the local clock in `zone` reads `clock`."""
    local = after.astimezone(zone)
    candidate = datetime.combine(local.date(), clock_time(clock), tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), clock_time(clock), tzinfo=zone)
    return candidate


def render(template: str | None, text: str, *, server: str, agent: str, user_id: str, at: datetime) -> str:
    """The announcement's text as posted at `at` (local): the template with its placeholders filled in, or
    the text as written."""
    if template is None:
        return text
    values = {
        "server": server,
        "date": at.date().isoformat(),
        "weekday": at.strftime("%A"),
        "time": at.strftime("%H:%M"),
        "agent": agent,
        "user": f"<@{user_id}>",
        "text": text,
    }
    # Validation admits only known placeholders.
    return BRACED_PLACEHOLDER.sub(lambda match: values[match.group(1)], template)[:2000]


def post(emit: Emitter, text: str, channel_id: str, channel_type: int | None) -> SendMessage:
    sent = emit.send(Say(text, title=TITLE), channel_id)
    return sent.model_copy(update={"crosspost": channel_type == ANNOUNCEMENT_CHANNEL})


def refusal(invocation: Invocation, where: Where) -> str | None:
    if invocation.guild_id is None:
        return "Announcements work in servers only."
    refused = missing_permission(invocation, where.shown)
    if refused is not None:
        return refused
    if where.channel_id is None:
        return f"I can't find the announcement channel {where.config.channel}."
    return None


def handle_announce(
    invocation: Invocation,
    book: AnnouncementBook | None,
    emit: Emitter,
    where: Where,
    *,
    server: str,
    channel_type: int | None,
) -> Outcome[AnnouncementBook]:
    current = book or AnnouncementBook()
    refused = refusal(invocation, where)
    if refused is not None:
        return Outcome(Say(refused, ephemeral=True))
    assert where.channel_id is not None and invocation.guild_id is not None
    if emit.cause_id in current.taken:
        return Outcome(None)
    message = invocation.text("message").strip()
    name, _, rest = message.partition(" ")
    template = where.config.templates.get(name)
    text = rest.strip() if template is not None else message
    deployment = emit.deployed.deployment
    clock = invocation.text("at")
    if not clock:
        local = invocation.at.astimezone(where.zone)
        said = render(
            template, text, server=server, agent=emit.agent.name, user_id=invocation.user.id, at=local
        )
        return Outcome(
            Say(f"Announced in <#{where.channel_id}>.", ephemeral=True),
            actions=[post(emit, said, where.channel_id, channel_type)],
        )
    if len(current.scheduled) >= MAX_SCHEDULED:
        return Outcome(Say("Too many announcements are scheduled already.", ephemeral=True))
    due = next_time(invocation.at, clock, where.zone)
    scheduled = ScheduledAnnouncement(
        announcement_id=emit.cause_id,
        deployment_id=deployment.deployment_id,
        bot_id=deployment.bot_id,
        guild_id=invocation.guild_id,
        channel_id=where.channel_id,
        user_id=invocation.user.id,
        due_at=due,
        template=template,
        text=text,
    )
    updated = AnnouncementBook(
        scheduled=[*current.scheduled, scheduled], taken=remember_applied(current.taken, emit.cause_id)
    )
    if not fits_in_table(updated):
        return Outcome(Say("The announcements scheduled hold too much text already.", ephemeral=True))
    answer = f"I'll announce it in <#{where.channel_id}> at {clock} on {due.date().isoformat()}"
    answer += f" ({where.zone.key})."
    return Outcome(Say(answer, ephemeral=True), state=updated)


def take_due(book: AnnouncementBook, now: datetime) -> tuple[list[ScheduledAnnouncement], AnnouncementBook]:
    """The announcements due at `now`, and the book without them."""
    due = [a for a in book.scheduled if a.due_at <= now]
    remaining = [a for a in book.scheduled if a.due_at > now]
    return due, book.model_copy(update={"scheduled": remaining})
