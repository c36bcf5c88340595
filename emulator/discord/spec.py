"""Pure-data description of an emulated Discord: settings and the world (users, guilds, bots)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from .intents import PRIVILEGED


def _to_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise ValueError(f"snowflake ids are strings of digits, got {value!r}")
    return str(value)


Snowflake = Annotated[str, BeforeValidator(_to_id)]

CHANNEL_TEXT = 0
CHANNEL_DM = 1
CHANNEL_VOICE = 2
# An announcement (news) channel: its messages can be crossposted to the channels following it.
CHANNEL_ANNOUNCEMENT = 5
_CHANNEL_TYPES = {"text": CHANNEL_TEXT, "voice": CHANNEL_VOICE, "announcement": CHANNEL_ANNOUNCEMENT}
GUILD_CHANNEL_TYPES = frozenset(_CHANNEL_TYPES.values())


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmulatorConfig(_Spec):
    """Server behaviour. Defaults are Discord's; tests shrink intervals and limits."""

    heartbeat_interval_ms: int = Field(41_250, ge=10)
    # A connection that sends nothing for 1.5 heartbeat intervals plus this grace is closed with 4009.
    heartbeat_grace_s: float = Field(10.0, ge=0)
    # One IDENTIFY per max_concurrency bucket per this many seconds; earlier ones get INVALID_SESSION.
    identify_interval_s: float = Field(5.0, ge=0)
    # How long a disconnected session (gateway or voice) stays resumable.
    resume_timeout_s: float = Field(180.0, ge=0)
    # Dispatches kept per session for RESUME replay.
    replay_limit: int = Field(1000, ge=1)
    gateway_send_limit: int = Field(120, ge=1)
    gateway_send_window_s: float = Field(60.0, gt=0)
    gateway_max_payload_bytes: int = Field(4096, ge=256)
    # A shard holding more guilds than this is refused (4011); GET /gateway/bot recommends one shard per
    # guilds_per_recommended_shard guilds. Tests shrink both to need several shards with a few guilds.
    max_guilds_per_shard: int = Field(2500, ge=1)
    guilds_per_recommended_shard: int = Field(1000, ge=1)
    # zlib-stream context per connection: a small window keeps 10k connections cheap (zlib's memory is
    # 2^(bits+2) + 2^(mem_level+9) bytes); clients' decompressors accept any window size.
    zlib_window_bits: int = Field(10, ge=9, le=15)
    zlib_mem_level: int = Field(2, ge=1, le=9)

    rest_global_limit: int = Field(50, ge=1)
    rest_global_window_s: float = Field(1.0, gt=0)
    route_limit: int = Field(5, ge=1)
    route_window_s: float = Field(5.0, gt=0)
    # Per-route overrides keyed "METHOD /template", e.g. "POST /channels/{channel_id}/messages".
    route_limits: dict[str, tuple[int, float]] = Field(default_factory=dict)
    invalid_request_window_s: float = Field(600.0, gt=0)
    invalid_request_ban_threshold: int = Field(10_000, ge=1)
    invalid_request_ban_s: float = Field(3600.0, ge=0)

    history_limit: int = Field(1000, ge=1)
    actions_limit: int = Field(200_000, ge=1)
    interaction_response_timeout_s: float = Field(3.0, gt=0)
    interaction_token_ttl_s: float = Field(900.0, gt=0)
    traffic_max_rate_per_s: float = Field(50_000.0, gt=0)
    # Base URL handed to clients (gateway url, resume_gateway_url); default: the bound address.
    public_url: str | None = None
    # Host[:port] in VOICE_SERVER_UPDATE; default: the emulator's voice server (its own port).
    voice_endpoint: str | None = None
    # HELLO's heartbeat interval on the voice gateway; silence past 1.5 intervals + heartbeat_grace_s: 4009.
    voice_heartbeat_interval_ms: int = Field(13_750, ge=10)
    # The DAVE version the voice server requires and runs: 1 (end-to-end encryption, as Discord requires
    # now; a client offering less is closed with 4017) or 0 (transport encryption only).
    voice_dave_protocol_version: Literal[0, 1] = 1
    # Opus frames the voice server keeps per (guild, channel, user) for read-back: 30,000 are 10 minutes.
    voice_frames_kept: int = Field(30_000, ge=1)


class UserSpec(_Spec):
    id: Snowflake | None = None
    username: str
    global_name: str | None = None
    avatar: str | None = None


class RoleSpec(_Spec):
    id: Snowflake | None = None
    name: str
    permissions: str = "0"
    color: int = 0
    hoist: bool = False
    mentionable: bool = False


class ChannelSpec(_Spec):
    id: Snowflake | None = None
    name: str
    type: int = CHANNEL_TEXT
    topic: str | None = None
    nsfw: bool = False
    parent_id: Snowflake | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _named_type(cls, value: Any) -> Any:
        return _CHANNEL_TYPES.get(value, value) if isinstance(value, str) else value

    @field_validator("type")
    @classmethod
    def _supported_type(cls, value: int) -> int:
        if value not in GUILD_CHANNEL_TYPES:
            raise ValueError("guild channels are text (0), voice (2) or announcement (5)")
        return value


class MemberSpec(_Spec):
    user_id: Snowflake
    nick: str | None = None
    roles: list[Snowflake] = Field(default_factory=list)


def _member_from_id(value: Any) -> Any:
    return {"user_id": value} if isinstance(value, int | str) else value


class GuildSpec(_Spec):
    id: Snowflake | None = None
    name: str
    owner_id: Snowflake | None = None
    channels: list[ChannelSpec] = Field(default_factory=list)
    members: list[Annotated[MemberSpec, BeforeValidator(_member_from_id)]] = Field(default_factory=list)
    roles: list[RoleSpec] = Field(default_factory=list)


class BotSpec(_Spec):
    token: str | None = None
    id: Snowflake | None = None
    username: str = "bot"
    application_id: Snowflake | None = None
    guild_ids: list[Snowflake] = Field(default_factory=list)
    # Privileged intents switched on in the developer portal (GUILD_MEMBERS, GUILD_PRESENCES,
    # MESSAGE_CONTENT bits); requesting one that is not enabled closes the gateway with 4014.
    privileged_intents: int = PRIVILEGED
    max_concurrency: int = Field(1, ge=1)
    session_start_limit: int = Field(1000, ge=0)
    # Overrides the global REST limit (requests per rest_global_window_s) for this token.
    rest_global_limit: int | None = Field(None, ge=1)


class WorldSpec(_Spec):
    users: list[UserSpec] = Field(default_factory=list)
    guilds: list[GuildSpec] = Field(default_factory=list)
    bots: list[BotSpec] = Field(default_factory=list)
    config: EmulatorConfig | None = None
