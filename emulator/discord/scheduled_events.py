"""Guild scheduled events as Discord has them: create, list, get, modify, delete, and the users interested.

An event happens in a voice channel (entity type 2; a stage, type 1, needs a stage channel, which this world
has none of) or outside Discord (type 3, at `entity_metadata.location`, with an end time). Privacy is
GUILD_ONLY (2), the only level Discord accepts. The status moves SCHEDULED (1) -> ACTIVE (2) -> COMPLETED (3),
or SCHEDULED -> CANCELED (4); a finished event changes no more. Each change dispatches
GUILD_SCHEDULED_EVENT_CREATE/UPDATE/DELETE, and a user's interest USER_ADD/USER_REMOVE, to the guild's bots
with the GUILD_SCHEDULED_EVENTS intent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from settings.clock import Clock

from . import errors
from .errors import ApiError
from .gateway import GatewayHub
from .ids import SnowflakeGenerator
from .payloads import user_payload
from .spec import CHANNEL_VOICE
from .validation import FormErrors
from .world import SCHEDULED, Action, Bot, Guild, Json, ScheduledEvent, World

STAGE, VOICE, EXTERNAL = 1, 2, 3
GUILD_ONLY = 2
ACTIVE, COMPLETED, CANCELED = 2, 3, 4
TRANSITIONS = {SCHEDULED: {ACTIVE, CANCELED}, ACTIVE: {COMPLETED}}
UNKNOWN_SCHEDULED_EVENT = 10070
CANNOT_UPDATE_FINISHED = 180000
MAX_NAME, MAX_DESCRIPTION, MAX_LOCATION = 100, 1000, 100
_FIELDS = frozenset(
    {
        "name",
        "description",
        "privacy_level",
        "scheduled_start_time",
        "scheduled_end_time",
        "entity_type",
        "channel_id",
        "entity_metadata",
        "image",
        "recurrence_rule",
    }
)


def _invalid(path: str, message: str) -> ApiError:
    """Discord's 50035 with the error at the field's place in the body: "a.b" under {"a": {"b": ...}}."""
    found = FormErrors()
    found.add(tuple(path.split(".")), "BASE_TYPE_INVALID", message)
    return ApiError(400, 50035, "Invalid Form Body", found.tree)


def _text(body: Json, name: str, limit: int, *, required: bool, within: str = "") -> str | None:
    """The text field `name` of `body`; `within` is the path of `body` in the request, for the error."""
    value = body.get(name)
    path = f"{within}.{name}" if within else name
    if value is None:
        if required:
            raise _invalid(path, "This field is required")
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise _invalid(path, f"Must be between 1 and {limit} in length.")
    return value


def _time(body: Json, name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise _invalid(name, "Could not parse the time. Should be an ISO8601 timestamp.")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _entity(body: Json, guild: Guild, entity_type: int) -> tuple[str | None, str | None]:
    """(channel id, location) of an event of `entity_type`, as the body gives them."""
    channel_id = body.get("channel_id")
    metadata = body.get("entity_metadata")
    if entity_type == EXTERNAL:
        if channel_id is not None:
            raise _invalid("channel_id", "An external event has no channel.")
        given = metadata if isinstance(metadata, dict) else {}
        location = _text(given, "location", MAX_LOCATION, required=True, within="entity_metadata")
        return None, location
    if entity_type not in (STAGE, VOICE):
        raise _invalid("entity_type", "Value must be one of {1, 2, 3}.")
    if metadata is not None:
        raise _invalid("entity_metadata", "Only an external event has entity metadata.")
    if channel_id is None:
        raise _invalid("channel_id", "A voice or stage event needs a channel.")
    channel = guild.channels.get(str(channel_id))
    if channel is None or channel.type != CHANNEL_VOICE or entity_type == STAGE:
        kind = "stage" if entity_type == STAGE else "voice"
        raise _invalid("channel_id", f"Must be a {kind} channel of this guild.")
    return channel.id, None


def _times(start: datetime, end: datetime | None, entity_type: int, now: datetime | None) -> None:
    """`now`: when a new start must be after; None when the start is not being set."""
    if now is not None and start <= now:
        raise _invalid("scheduled_start_time", "Cannot schedule event in the past.")
    if entity_type == EXTERNAL and end is None:
        raise _invalid("scheduled_end_time", "An external event needs an end time.")
    if end is not None and end <= start:
        raise _invalid("scheduled_end_time", "Must be after the start time.")


def _known(body: Json) -> None:
    unknown = sorted(set(body) - _FIELDS - {"status"})
    if unknown:
        raise _invalid(unknown[0], "Unknown field.")


def new_event(event_id: str, guild: Guild, creator_id: str, body: Json, now: datetime) -> ScheduledEvent:
    """The event a POST body describes; an invalid body raises Discord's error naming the field."""
    _known(body)
    if "status" in body:
        raise _invalid("status", "A new event is scheduled; set its status by modifying it.")
    name = _text(body, "name", MAX_NAME, required=True)
    assert name is not None
    if body.get("privacy_level") != GUILD_ONLY:
        raise _invalid("privacy_level", "Value must be one of {2}.")
    entity_type = body.get("entity_type")
    if not isinstance(entity_type, int) or isinstance(entity_type, bool):
        raise _invalid("entity_type", "Value must be one of {1, 2, 3}.")
    start = _time(body, "scheduled_start_time")
    if start is None:
        raise _invalid("scheduled_start_time", "This field is required")
    end = _time(body, "scheduled_end_time")
    channel_id, location = _entity(body, guild, entity_type)
    _times(start, end, entity_type, now)
    return ScheduledEvent(
        id=event_id,
        guild_id=guild.id,
        creator_id=creator_id,
        name=name,
        description=_text(body, "description", MAX_DESCRIPTION, required=False),
        scheduled_start_time=start,
        scheduled_end_time=end,
        entity_type=entity_type,
        channel_id=channel_id,
        location=location,
    )


def modified(event: ScheduledEvent, guild: Guild, body: Json, now: datetime) -> ScheduledEvent:
    """The event with a PATCH body's changes; a finished event or a status it cannot move to is refused."""
    _known(body)
    if event.status not in TRANSITIONS:
        raise ApiError(400, CANNOT_UPDATE_FINISHED, "Cannot update a finished event")
    status = body.get("status", event.status)
    if status != event.status and status not in TRANSITIONS[event.status]:
        raise _invalid("status", f"Cannot move an event from status {event.status} to {status}.")
    if "privacy_level" in body and body["privacy_level"] != GUILD_ONLY:
        raise _invalid("privacy_level", "Value must be one of {2}.")
    entity_type = body.get("entity_type", event.entity_type)
    entity_changes = {"entity_type", "channel_id", "entity_metadata"} & set(body)
    channel_id, location = event.channel_id, event.location
    if entity_changes:
        current: Json = {"channel_id": event.channel_id} if event.channel_id else {}
        if event.location is not None and entity_type == EXTERNAL:
            current["entity_metadata"] = {"location": event.location}
        channel_id, location = _entity({**current, **body}, guild, entity_type)
    start = _time(body, "scheduled_start_time") or event.scheduled_start_time
    end = _time(body, "scheduled_end_time") if "scheduled_end_time" in body else event.scheduled_end_time
    if {"scheduled_start_time", "scheduled_end_time", "entity_type"} & set(body):
        _times(start, end, entity_type, now if "scheduled_start_time" in body else None)
    name = _text(body, "name", MAX_NAME, required=False) or event.name
    description = (
        _text(body, "description", MAX_DESCRIPTION, required=False)
        if "description" in body
        else event.description
    )
    return ScheduledEvent(
        id=event.id,
        guild_id=event.guild_id,
        creator_id=event.creator_id,
        name=name,
        description=description,
        scheduled_start_time=start,
        scheduled_end_time=end,
        entity_type=entity_type,
        channel_id=channel_id,
        location=location,
        status=status,
        interested=event.interested,
    )


def event_payload(event: ScheduledEvent, world: World, *, with_user_count: bool = False) -> Json:
    creator = world.users.get(event.creator_id)
    payload: Json = {
        "id": event.id,
        "guild_id": event.guild_id,
        "channel_id": event.channel_id,
        "creator_id": event.creator_id,
        "name": event.name,
        "description": event.description,
        "scheduled_start_time": event.scheduled_start_time.isoformat(),
        "scheduled_end_time": event.scheduled_end_time.isoformat() if event.scheduled_end_time else None,
        "privacy_level": event.privacy_level,
        "status": event.status,
        "entity_type": event.entity_type,
        "entity_id": None,
        "entity_metadata": {"location": event.location} if event.location is not None else None,
        "image": None,
        "recurrence_rule": None,
    }
    if creator is not None:
        payload["creator"] = user_payload(creator)
    if with_user_count:
        payload["user_count"] = len(event.interested)
    return payload


class ScheduledEvents:
    """The effects on a guild's scheduled events: state changed, gateway events dispatched, bots' acts
    recorded."""

    def __init__(
        self,
        world: World,
        hub: GatewayHub,
        ids: SnowflakeGenerator,
        record: Callable[[str, Bot, str | None, str | None, Json], Action],
        bot_guild: Callable[[Bot, str], Guild],
        clock: Clock,
    ) -> None:
        """`bot_guild(bot, guild_id)`: the guild, if the bot is in it (else Discord's 403); `clock`: the
        emulated Discord's now (a start must be after it)."""
        self.world, self.hub, self.ids, self.record = world, hub, ids, record
        self._bot_guild, self._clock = bot_guild, clock

    @staticmethod
    def _event(guild: Guild, event_id: str) -> ScheduledEvent:
        try:
            return guild.scheduled_events[event_id]
        except KeyError:
            raise errors.not_found("Guild Scheduled Event", UNKNOWN_SCHEDULED_EVENT) from None

    def _changed(self, guild: Guild, kind: str, event: ScheduledEvent, bot: Bot | None) -> Json:
        payload = event_payload(event, self.world)
        self.hub.dispatch_guild(guild, f"GUILD_SCHEDULED_EVENT_{kind.upper()}", payload)
        if bot is not None:
            self.record(f"scheduled_event_{kind}", bot, guild.id, event.channel_id, payload)
        return payload

    def create(self, bot: Bot, guild_id: str, body: Json) -> Json:
        guild = self._bot_guild(bot, guild_id)
        event = new_event(self.ids.next(), guild, bot.id, body, self._clock())
        guild.scheduled_events[event.id] = event
        return self._changed(guild, "create", event, bot)

    def all(self, bot: Bot, guild_id: str, *, with_user_count: bool) -> list[Json]:
        guild = self._bot_guild(bot, guild_id)
        return [
            event_payload(e, self.world, with_user_count=with_user_count)
            for e in guild.scheduled_events.values()
        ]

    def get(self, bot: Bot, guild_id: str, event_id: str, *, with_user_count: bool) -> Json:
        guild = self._bot_guild(bot, guild_id)
        return event_payload(self._event(guild, event_id), self.world, with_user_count=with_user_count)

    def modify(self, bot: Bot, guild_id: str, event_id: str, body: Json) -> Json:
        guild = self._bot_guild(bot, guild_id)
        event = modified(self._event(guild, event_id), guild, body, self._clock())
        guild.scheduled_events[event.id] = event
        return self._changed(guild, "update", event, bot)

    def delete(self, bot: Bot, guild_id: str, event_id: str) -> None:
        guild = self._bot_guild(bot, guild_id)
        event = self._event(guild, event_id)
        del guild.scheduled_events[event_id]
        self._changed(guild, "delete", event, bot)

    def users(self, bot: Bot, guild_id: str, event_id: str, limit: int) -> list[Json]:
        guild = self._bot_guild(bot, guild_id)
        event = self._event(guild, event_id)
        return [
            {"guild_scheduled_event_id": event.id, "user": user_payload(self.world.user(user_id))}
            for user_id in list(event.interested)[:limit]
        ]

    def set_interest(self, guild_id: str, event_id: str, user_id: str, interested: bool) -> Json:
        """A member marks (or unmarks) themselves interested; a finished event takes no interest."""
        guild = self.world.guild(guild_id)
        self.world.member(guild, user_id)
        event = self._event(guild, event_id)
        if event.status not in TRANSITIONS:
            raise ApiError(400, CANNOT_UPDATE_FINISHED, "Cannot update a finished event")
        if interested == (user_id in event.interested):
            return event_payload(event, self.world, with_user_count=True)
        if interested:
            event.interested[user_id] = None
        else:
            del event.interested[user_id]
        data = {"guild_scheduled_event_id": event.id, "user_id": user_id, "guild_id": guild.id}
        self.hub.dispatch_guild(
            guild, f"GUILD_SCHEDULED_EVENT_USER_{'ADD' if interested else 'REMOVE'}", data
        )
        return event_payload(event, self.world, with_user_count=True)
