"""Channel context: the last N messages of a channel, which the decision engine and the prompt read."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime

from models.discord import DiscordMessage
from models.state import ChannelContext, ContextMessage, ContextSlot, ContextWindow
from models.table_keys import ContextSlotKey

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
    if entry.message_id != PENDING_MESSAGE_ID and any(m.message_id == entry.message_id for m in messages):
        return None
    pending = next(
        (
            index
            for index, m in enumerate(messages)
            if m.message_id == PENDING_MESSAGE_ID
            and m.author_id == entry.author_id
            and m.content == entry.content
        ),
        None,
    )
    if pending is not None and entry.message_id != PENDING_MESSAGE_ID:
        updated = [*messages[:pending], entry, *messages[pending + 1 :]]
    else:
        updated = [*messages, entry]
    return ChannelContext(channel_id=channel_id, messages=updated[-limit:])


def spoke_since(context: ChannelContext | None, author_id: str, since: datetime) -> bool:
    return context is not None and any(m.author_id == author_id and m.at >= since for m in context.messages)


def author_of(context: ChannelContext | None, message_id: str) -> str | None:
    if context is None:
        return None
    return next((m.author_id for m in context.messages if m.message_id == message_id), None)


# The ring a channel starts with; it doubles when the window outgrows it (rewriting the window's slots once).
SMALLEST_RING = 8


@dataclass(frozen=True)
class _Held:
    """A channel's context as last read or written, with the window record it stands for and the position
    of its first message."""

    window: ContextWindow
    context: ChannelContext
    first: int


class ContextRing(MutableMapping[str, ChannelContext]):
    """Channel contexts under their ContextKey, kept as a ring of one slot per message and a small window
    record saying which positions are in the context. Storing a context writes only what changed: after a
    new message, its slot and the window (two small changelog records, where the whole context was one
    record of up to its window's messages).

    Each context read is kept beside the window record it was read under: every change writes a new window
    record (here, or in a recovery from the changelog), so while the record is the same object the context
    is unchanged, and a read costs one lookup instead of one per message."""

    def __init__(
        self, windows: MutableMapping[str, ContextWindow], slots: MutableMapping[str, ContextSlot]
    ) -> None:
        self._windows = windows
        self._slots = slots
        self._held: dict[str, _Held] = {}

    def _current(self, key: str) -> _Held | None:
        window = self._windows.get(key)
        held = self._held.get(key)
        if window is None:
            self._held.pop(key, None)
            return None
        if held is not None and held.window is window:
            return held
        slots = self._slots
        first = window.first
        messages: list[ContextMessage] = []
        for position in range(window.first, window.last + 1):
            slot = slots.get(ContextSlotKey.of(key, position % window.ring))
            if slot is None or slot.position != position:
                # Only a changelog cut short leaves a gap: the context is the run after it.
                first, messages = position + 1, []
            else:
                messages.append(slot.message)
        # Built from validated values: no need to validate them again.
        context = ChannelContext.model_construct(channel_id=window.channel_id, messages=messages)
        held = self._held[key] = _Held(window, context, first)
        return held

    def __getitem__(self, key: str) -> ChannelContext:
        held = self._current(key)
        if held is None:
            raise KeyError(key)
        return held.context

    def __setitem__(self, key: str, context: ChannelContext) -> None:
        current = self._current(key)
        messages = context.messages
        held = current.context.messages if current is not None else []
        # The messages read are the held ones' own objects: where the new context's first message is among
        # them (at the start, or one on when the oldest was dropped), those that follow keep their
        # positions; a context that shares no start with the held one gets positions after them.
        shift = next((j for j, message in enumerate(held) if messages and message is messages[0]), None)
        if current is None:
            first = 0
        elif shift is None:
            first = current.window.last + 1
        else:
            first = current.first + shift
        ring = current.window.ring if current is not None else SMALLEST_RING
        while ring < len(messages):
            ring *= 2
        # A grown ring puts every position in another slot.
        kept = (
            held[shift:] if shift is not None and current is not None and ring == current.window.ring else []
        )
        written = False
        for index, message in enumerate(messages):
            if index >= len(kept) or kept[index] is not message:
                position = first + index
                self._slots[ContextSlotKey.of(key, position % ring)] = ContextSlot(
                    position=position, message=message
                )
                written = True
        window = ContextWindow(
            channel_id=context.channel_id, first=first, last=first + len(messages) - 1, ring=ring
        )
        if written or current is None or window != current.window:
            self._windows[key] = window
        else:
            window = current.window
        self._held[key] = _Held(window, context, first)

    def __delitem__(self, key: str) -> None:
        window = self._windows.pop(key)
        self._held.pop(key, None)
        for slot in range(window.ring):
            self._slots.pop(ContextSlotKey.of(key, slot), None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._windows)

    def __len__(self) -> int:
        return len(self._windows)
