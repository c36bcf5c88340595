"""What processors write to `discord.actions` and gateways perform through Discord's REST API.

Every action carries an action_id: the gateway records it before acknowledging, so a redelivered
action is never performed twice. Processors derive it from the causing event, so a reprocessed event
yields the same id.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_serializer, field_validator, model_validator

from models.common import MessageText, Payload, ShortText, Snowflake, Strict, utc_now
from models.events import SealedData

ActionId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(max_length=512)]


# An action travels as one Kafka record (1 MB at most by default): its attachment stays well under that.
ATTACHMENT_MAX_BYTES = 512 * 1024


class EmbedField(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    value: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    inline: bool = True


class Embed(Strict):
    title: Annotated[str, StringConstraints(max_length=256)] = ""
    description: Annotated[str, StringConstraints(max_length=4096)] = ""
    color: int = Field(default=0x5865F2, ge=0, le=0xFFFFFF)
    footer: Annotated[str, StringConstraints(max_length=2048)] = ""
    fields: list[EmbedField] = Field(default_factory=list, max_length=25)
    # An https URL, or attachment://<filename> for an image uploaded with the same message.
    image_url: Annotated[str, StringConstraints(max_length=2048)] = ""


class Attachment(Strict):
    """A file uploaded with a message (Discord's multipart files[n]); JSON carries its bytes as base64."""

    filename: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,60}\.(png|jpg|jpeg|gif|webp)$")]
    content_type: Literal["image/png", "image/jpeg", "image/gif", "image/webp"]
    data: bytes = Field(min_length=1, max_length=ATTACHMENT_MAX_BYTES)
    description: Annotated[str, StringConstraints(max_length=1024)] = ""

    @field_validator("data", mode="before")
    @classmethod
    def _from_base64(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except binascii.Error:
                raise ValueError("not base64") from None
        return value

    @field_serializer("data")
    def _to_base64(self, data: bytes) -> str:
        return base64.b64encode(data).decode()


class ActionBase(Payload):
    action_id: ActionId
    bot_id: Snowflake
    guild_id: Snowflake | None = None
    deployment_id: str | None = None
    # The event that caused the action, for tracing and analytics.
    cause_event_id: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    # The one member a reply answers; with a moderated member (`user_id`), whose data key seals the action's
    # words and member ids (streams/catalog.py: ACTION_SEALING).
    about_user_id: Snowflake | None = None
    sealed: SealedData | None = None


class NativePoll(Strict):
    """Discord's own poll, attached to a message: members vote in the client, Discord counts and closes it
    after `duration_hours`, then sends the message again with the final results."""

    question: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    answers: list[Annotated[str, StringConstraints(min_length=1, max_length=55)]] = Field(
        min_length=1, max_length=10
    )
    duration_hours: int = Field(default=24, ge=1, le=768)


class AnswerInteraction(Strict):
    kind: Literal["interaction"] = "interaction"
    interaction_id: Snowflake
    interaction_token: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class AnswerInChannel(Strict):
    kind: Literal["channel"] = "channel"
    channel_id: Snowflake
    # The command's message, replied to; None posts in the channel.
    message_id: Snowflake | None = None


class Report(Strict):
    """What is told of a moderation action once Discord has answered it, so nobody hears of a ban that did
    not happen: `done` after Discord confirmed, `failed` followed by Discord's reason after it refused.
    The answer goes where the command was given; every action also goes to the moderation log."""

    done: MessageText
    failed: MessageText
    answer: Annotated[AnswerInteraction | AnswerInChannel, Field(discriminator="kind")] | None = None
    log_channel_id: Snowflake | None = None
    # Who acted, for the log: a moderator's mention, or the rule that enforced it.
    actor: ShortText = ""
    # The answer as an embed titled "Moderation" in this colour (the agent's embed style); None: plain text.
    embed_color: int | None = Field(default=None, ge=0, le=0xFFFFFF)


class ReportedAction(ActionBase):
    report: Report | None = None


class MemberAction(ReportedAction):
    """An action on one member (ban, kick, timeout, warning): their id travels sealed with its reason."""

    # None only while `sealed` holds it; `member` is the id of an opened action.
    user_id: Snowflake | None = None

    @model_validator(mode="after")
    def _names_the_member(self) -> MemberAction:
        if self.user_id is None and self.sealed is None:
            raise ValueError("user_id: the member acted on is required")
        return self

    @property
    def member(self) -> str:
        if self.user_id is None:
            raise ValueError(f"action {self.action_id}: user_id is sealed; open the action first")
        return self.user_id


class SendMessage(ActionBase):
    kind: Literal["send_message"] = "send_message"
    channel_id: Snowflake
    content: MessageText = ""
    embed: Embed | None = None
    poll: NativePoll | None = None
    attachment: Attachment | None = None
    # Publish the message to the channels following this one: only in an announcement channel (type 5).
    crosspost: bool = False


class Reply(ActionBase):
    kind: Literal["reply"] = "reply"
    channel_id: Snowflake
    message_id: Snowflake
    content: MessageText = ""
    embed: Embed | None = None
    poll: NativePoll | None = None
    attachment: Attachment | None = None


class React(ActionBase):
    kind: Literal["react"] = "react"
    channel_id: Snowflake
    message_id: Snowflake
    emoji: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class DeleteMessage(ReportedAction):
    kind: Literal["delete_message"] = "delete_message"
    channel_id: Snowflake
    message_id: Snowflake
    reason: Reason = ""


class Ban(MemberAction):
    kind: Literal["ban"] = "ban"
    reason: Reason = ""
    delete_message_seconds: int = Field(default=0, ge=0, le=604800)


class Unban(MemberAction):
    kind: Literal["unban"] = "unban"
    reason: Reason = ""


class Kick(MemberAction):
    kind: Literal["kick"] = "kick"
    reason: Reason = ""


class Timeout(MemberAction):
    kind: Literal["timeout"] = "timeout"
    duration_s: int = Field(ge=1, le=28 * 24 * 3600)
    reason: Reason = ""


class Warn(MemberAction):
    """Discord has no warnings: the edge tells the user in the channel; counts live in the processors."""

    kind: Literal["warn"] = "warn"
    channel_id: Snowflake
    reason: Reason = ""
    warn_count: int = Field(ge=1)


class VoiceJoin(ActionBase):
    kind: Literal["voice_join"] = "voice_join"
    channel_id: Snowflake
    # The names the agent answers to when it listens (speech to text, published as VOICE_TRANSCRIPT);
    # empty: it does not listen.
    listen_for: list[ShortText] = Field(default_factory=list, max_length=10)


class VoiceLeave(ActionBase):
    kind: Literal["voice_leave"] = "voice_leave"


class VoicePlay(ActionBase):
    """Playback control for the audio node that serves the bot's voice connection."""

    kind: Literal["voice_play"] = "voice_play"
    channel_id: Snowflake | None = None
    command: Literal["play", "skip", "stop", "pause", "resume", "volume"]
    track: ShortText = ""
    volume: int | None = Field(default=None, ge=0, le=200)


class VoiceSpeak(ActionBase):
    """Say a text in the bot's voice channel: the edge synthesizes it and plays it like a track."""

    kind: Literal["voice_speak"] = "voice_speak"
    channel_id: Snowflake
    text: MessageText
    # An ElevenLabs voice id speaks through ElevenLabs; empty speaks with the offline engine.
    voice_id: ShortText = ""


class PresenceUpdate(ActionBase):
    kind: Literal["presence_update"] = "presence_update"
    status: Literal["online", "idle", "dnd", "invisible"] = "online"
    activity: ShortText = ""


class InteractionResponse(ActionBase):
    kind: Literal["interaction_response"] = "interaction_response"
    interaction_id: Snowflake
    # The interaction token is a short-lived webhook credential for this one interaction, not a bot token.
    interaction_token: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    content: MessageText = ""
    embed: Embed | None = None
    ephemeral: bool = False
    poll: NativePoll | None = None
    attachment: Attachment | None = None


class MemberPersonaUpdate(ActionBase):
    """PATCH /guilds/{id}/members/@me: one bot wears a different persona per guild."""

    kind: Literal["member_persona_update"] = "member_persona_update"
    nick: Annotated[str, StringConstraints(max_length=32)] | None = None
    avatar_url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    banner_url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    bio: Annotated[str, StringConstraints(max_length=190)] | None = None


class TypingIndicator(ActionBase):
    kind: Literal["typing"] = "typing"
    channel_id: Snowflake
    # How long the edge shows "typing" before it performs this bot's next action, so a reply arrives
    # after a human-like pause proportional to its length.
    delay_ms: int = Field(default=0, ge=0, le=10_000)


class ScheduledEventStatus(IntEnum):
    """Discord's guild scheduled event status: SCHEDULED -> ACTIVE -> COMPLETED, or SCHEDULED -> CANCELED."""

    scheduled = 1
    active = 2
    completed = 3
    canceled = 4


class CreateScheduledEvent(ReportedAction):
    """POST /guilds/{id}/scheduled-events (guild-only privacy): in a voice channel, or at a location outside
    Discord (which needs the end time). The report announces it where the agent hosts it."""

    kind: Literal["create_scheduled_event"] = "create_scheduled_event"
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    description: Annotated[str, StringConstraints(max_length=1000)] = ""
    scheduled_start_time: datetime
    scheduled_end_time: datetime
    voice_channel_id: Snowflake | None = None
    location: Annotated[str, StringConstraints(max_length=100)] = ""


class SetScheduledEventStatus(ReportedAction):
    """PATCH /guilds/{id}/scheduled-events/{event id} with a new status: the event starts, ends or is
    canceled."""

    kind: Literal["set_scheduled_event_status"] = "set_scheduled_event_status"
    event_id: Snowflake
    status: ScheduledEventStatus


Action = Annotated[
    SendMessage
    | Reply
    | React
    | DeleteMessage
    | Ban
    | Unban
    | Kick
    | Timeout
    | Warn
    | VoiceJoin
    | VoiceLeave
    | VoicePlay
    | VoiceSpeak
    | PresenceUpdate
    | InteractionResponse
    | MemberPersonaUpdate
    | TypingIndicator
    | CreateScheduledEvent
    | SetScheduledEventStatus,
    Field(discriminator="kind"),
]
