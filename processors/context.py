"""Channel context: the last N messages of a channel, which the decision engine and the prompt read."""

from __future__ import annotations

from datetime import datetime

from models.discord import DiscordMessage
from models.state import ChannelContext, ContextMessage

# An agent's own reply is recorded when it is composed, before Discord has given it an id; the bot's own
# MESSAGE_CREATE later replaces the placeholder with the real message.
PENDING_MESSAGE_ID = "0"
_CONTENT_LIMIT = 4000


def context_message(message: DiscordMessage, at: datetime) -> ContextMessage:
    referenced = message.referenced_message
    name = (message.member.nick if message.member is not None else None) or message.author.display_name
    return ContextMessage(
        message_id=message.id,
        author_id=message.author.id,
        author_name=name[:100],
        author_is_bot=message.author.bot,
        content=message.content[:_CONTENT_LIMIT],
        at=at,
        reply_to_author_id=referenced.author.id if referenced is not None else None,
    )


def record_message(
    context: ChannelContext | None, channel_id: str, entry: ContextMessage, limit: int
) -> ChannelContext | None:
    """The context with `entry` appended and trimmed to `limit`, or None when it is already there (a
    redelivered event, or the same message seen through a second bot of the guild)."""
    messages = context.messages if context is not None else []
    # Every message runs this over the whole window: the ids are compared as one list.
    ids = [m.message_id for m in messages]
    if entry.message_id != PENDING_MESSAGE_ID and entry.message_id in ids:
        return None
    pending = (
        next(
            (
                index
                for index, m in enumerate(messages)
                if m.message_id == PENDING_MESSAGE_ID
                and m.author_id == entry.author_id
                and m.content == entry.content
            ),
            None,
        )
        if PENDING_MESSAGE_ID in ids
        else None
    )
    if pending is not None and entry.message_id != PENDING_MESSAGE_ID:
        updated = [*messages[:pending], entry, *messages[pending + 1 :]]
    else:
        updated = [*messages, entry]
    return ChannelContext(channel_id=channel_id, messages=updated[-limit:])


def spoke_since(context: ChannelContext | None, author_id: str, since: datetime) -> bool:
    if context is None:
        return False
    spoken = [m.at for m in context.messages if m.author_id == author_id]
    return any(at >= since for at in spoken)


def author_of(context: ChannelContext | None, message_id: str) -> str | None:
    if context is None:
        return None
    return next((m.author_id for m in context.messages if m.message_id == message_id), None)
