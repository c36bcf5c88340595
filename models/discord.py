"""Typed views of the Discord dispatch data the processors read. Unknown fields are ignored: Discord adds
fields over time and the envelope keeps the raw data anyway."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.common import Snowflake


class DiscordView(BaseModel):
    model_config = ConfigDict(extra="ignore")


class DiscordUser(DiscordView):
    id: Snowflake
    username: str = ""
    global_name: str | None = None
    bot: bool = False

    @property
    def display_name(self) -> str:
        return self.global_name or self.username


class MessageReference(DiscordView):
    message_id: Snowflake | None = None
    channel_id: Snowflake | None = None


class DiscordMember(DiscordView):
    user: DiscordUser | None = None
    nick: str | None = None
    roles: list[Snowflake] = Field(default_factory=list)
    # Present on interactions: the member's computed permissions in the channel, as a decimal string.
    permissions: str | None = None


class Mention(DiscordUser):
    # In a guild, Discord adds the mentioned member's partial member object.
    member: DiscordMember | None = None


class DiscordMessage(DiscordView):
    id: Snowflake
    channel_id: Snowflake
    guild_id: Snowflake | None = None
    author: DiscordUser
    member: DiscordMember | None = None
    content: str = ""
    timestamp: str = ""
    mentions: list[Mention] = Field(default_factory=list)
    mention_everyone: bool = False
    message_reference: MessageReference | None = None
    referenced_message: DiscordMessage | None = None


class PollText(DiscordView):
    text: str = ""


class PollAnswer(DiscordView):
    answer_id: int
    poll_media: PollText


class PollAnswerCount(DiscordView):
    id: int
    count: int = 0


class PollResults(DiscordView):
    is_finalized: bool = False
    answer_counts: list[PollAnswerCount] = Field(default_factory=list)


class Poll(DiscordView):
    question: PollText
    answers: list[PollAnswer] = Field(default_factory=list)
    results: PollResults | None = None


class PollMessage(DiscordView):
    """A MESSAGE_UPDATE as far as a poll is concerned: Discord sends one with the final results."""

    id: Snowflake
    channel_id: Snowflake
    author: DiscordUser | None = None
    poll: Poll | None = None


class InteractionOption(DiscordView):
    name: str
    type: int
    value: Any = None
    options: list[InteractionOption] = Field(default_factory=list)


class ResolvedData(DiscordView):
    """The users, members and others an interaction's options name, by id."""

    members: dict[Snowflake, DiscordMember] = Field(default_factory=dict)


class InteractionData(DiscordView):
    id: Snowflake | None = None
    name: str
    type: int = 1
    options: list[InteractionOption] = Field(default_factory=list)
    resolved: ResolvedData | None = None


class Interaction(DiscordView):
    id: Snowflake
    application_id: Snowflake
    type: int
    token: str
    guild_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    member: DiscordMember | None = None
    user: DiscordUser | None = None
    data: InteractionData | None = None

    @property
    def invoker(self) -> DiscordUser | None:
        return self.member.user if self.member and self.member.user else self.user


class ScheduledEventView(DiscordView):
    """GUILD_SCHEDULED_EVENT_CREATE, _UPDATE and _DELETE: the guild scheduled event."""

    id: Snowflake
    guild_id: Snowflake
    creator_id: Snowflake | None = None
    name: str
    scheduled_start_time: datetime
    status: int


class ScheduledEventUser(DiscordView):
    """GUILD_SCHEDULED_EVENT_USER_ADD and _REMOVE: a user marked or unmarked themselves interested."""

    guild_scheduled_event_id: Snowflake
    user_id: Snowflake
    guild_id: Snowflake


class DiscordUserGuild(DiscordView):
    """A guild in GET /users/@me/guilds: the signed-in user's permissions there, as Discord's bit string."""

    id: Snowflake
    name: str
    icon: str | None = None
    owner: bool = False
    permissions: int = 0


class OAuth2Tokens(DiscordView):
    """Discord's answer to a code exchange at /api/oauth2/token."""

    access_token: str
    token_type: str
    scope: str = ""
