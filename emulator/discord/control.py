"""The control API (/_control): build the world, act as users, inspect what bots did, break things."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import rules
from .engine import Engine
from .errors import ApiError
from .gateway import GatewayHub, encode_op
from .http_util import error_response, json_response, no_content, read_json, read_object
from .payloads import channel_payload, member_payload, user_payload
from .rest import ENGINE, LIMITER
from .scheduled_events import event_payload
from .spec import BotSpec, ChannelSpec, EmulatorConfig, MemberSpec, RoleSpec, Snowflake, UserSpec, WorldSpec
from .traffic import TrafficGenerator, TrafficRequest
from .voice_audio import CHANNELS, SAMPLE_RATE
from .world import Bot, Guild, Json

CONTROL_PREFIX = "/_control"
TRAFFIC = web.AppKey("traffic", TrafficGenerator)
STARTED_AT = web.AppKey("started_at", float)

Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GuildIn(_In):
    name: str
    id: Snowflake | None = None
    owner_id: Snowflake | None = None
    roles: list[RoleSpec] = Field(default_factory=list)


class BotPatch(_In):
    username: str | None = None
    privileged_intents: int | None = None
    max_concurrency: int | None = Field(None, ge=1)
    session_start_limit: int | None = Field(None, ge=0)
    rest_global_limit: int | None = Field(None, ge=1)
    guild_ids: list[Snowflake] | None = None


class MessageIn(_In):
    author_id: Snowflake
    content: str = ""
    channel_id: Snowflake | None = None
    to_bot_id: Snowflake | None = None
    reply_to: Snowflake | None = None
    embeds: list[dict[str, Any]] = Field(default_factory=list)


class EditIn(_In):
    content: str


class ReactionIn(_In):
    channel_id: Snowflake
    message_id: Snowflake
    user_id: Snowflake
    emoji: str


class PollIn(_In):
    channel_id: Snowflake
    message_id: Snowflake


class VoteIn(PollIn):
    user_id: Snowflake
    answer_id: int


class InteractionIn(_In):
    bot_id: Snowflake
    user_id: Snowflake
    channel_id: Snowflake
    name: str
    options: list[dict[str, Any]] = Field(default_factory=list)
    # 2: the command is run; 4: the user types in an autocomplete option (the one marked `focused`).
    type: Literal[2, 4] = 2


class VoiceIn(_In):
    guild_id: Snowflake
    user_id: Snowflake
    channel_id: Snowflake | None = None
    self_mute: bool = False
    self_deaf: bool = False


class VoiceDropIn(_In):
    bot_id: Snowflake | None = None
    # 4015 (voice server crashed) asks the client to RESUME; 4014/4006 end the session.
    code: int = Field(4015, ge=4000, le=4999)


class InterestIn(_In):
    user_id: Snowflake
    interested: bool = True


class BotTarget(_In):
    bot_id: Snowflake | None = None


class InvalidateIn(_In):
    bot_id: Snowflake
    # Discord's op 9 `d`: true lets the client RESUME, false ends the session (it must IDENTIFY again).
    resumable: bool


def bot_summary(bot: Bot) -> Json:
    return {
        "id": bot.id,
        "token": bot.token,
        "application_id": bot.application_id,
        "username": bot.user.username,
        "guild_ids": sorted(bot.guild_ids, key=int),
        "privileged_intents": bot.privileged_intents,
        "max_concurrency": bot.max_concurrency,
        "revoked": bot.revoked,
    }


def guild_summary(engine: Engine, guild: Guild) -> Json:
    return {
        "id": guild.id,
        "name": guild.name,
        "owner_id": guild.owner_id,
        "channels": [channel_payload(c, engine.world) for c in guild.channels.values()],
        "member_ids": list(guild.members),
        "bot_ids": sorted(guild.bot_ids, key=int),
        "roles": list(guild.roles.values()),
    }


async def _parse(request: web.Request, model: type[Model]) -> Model:
    try:
        return model.model_validate(await read_json(request))
    except ValidationError as exc:
        raise ApiError(
            400,
            50035,
            "Invalid Form Body",
            {"errors": _errors_json(exc.errors(include_url=False, include_context=False))},
        ) from None


def _errors_json(items: list[Any]) -> list[Json]:
    """Pydantic's validation errors reduced to JSON-safe fields."""
    return [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in items]


@web.middleware
async def control_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(CONTROL_PREFIX + "/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)


def _engine(request: web.Request) -> Engine:
    return request.app[ENGINE]


def _query_number(request: web.Request, name: str, default: float) -> float:
    try:
        return float(request.query.get(name, default))
    except ValueError:
        raise ApiError(400, 0, f"{name} must be a number") from None


def _query_int(request: web.Request, name: str, default: int) -> int:
    return int(_query_number(request, name, default))


# --- world -------------------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    engine = _engine(request)
    hub = engine.hub
    return json_response(
        {
            "status": "ok",
            "uptime_s": round(time.monotonic() - request.app[STARTED_AT], 3),
            "connections": len(hub.connections),
            "sessions": len(hub.sessions),
            "bots": len(engine.world.bots),
            "guilds": len(engine.world.guilds),
            "users": len(engine.world.users),
            "last_action_seq": engine.world.actions.last_seq,
            "gateway_url": hub.gateway_url,
        }
    )


async def get_world(request: web.Request) -> web.Response:
    return json_response(_engine(request).dump())


async def load_world(request: web.Request) -> web.Response:
    spec = await _parse(request, WorldSpec)
    return json_response(_engine(request).load(spec), 201)


async def get_config(request: web.Request) -> web.Response:
    return json_response(_engine(request).config.model_dump())


async def patch_config(request: web.Request) -> web.Response:
    engine = _engine(request)
    changes = await read_object(request)
    try:
        config = EmulatorConfig.model_validate({**engine.config.model_dump(), **changes})
    except ValidationError as exc:
        raise ApiError(400, 50035, "Invalid Form Body", {"errors": _errors_json(exc.errors())}) from None
    engine.set_config(config)
    return json_response(config.model_dump())


async def add_user(request: web.Request) -> web.Response:
    spec = await _parse(request, UserSpec)
    user = _engine(request).add_user(spec.username, spec.id, spec.global_name, spec.avatar)
    return json_response(user_payload(user), 201)


async def add_guild(request: web.Request) -> web.Response:
    spec = await _parse(request, GuildIn)
    engine = _engine(request)
    guild = engine.add_guild(
        spec.name, spec.id, spec.owner_id, [r.model_dump(exclude_none=True) for r in spec.roles]
    )
    return json_response(guild_summary(engine, guild), 201)


async def get_guild(request: web.Request) -> web.Response:
    engine = _engine(request)
    return json_response(guild_summary(engine, engine.world.guild(request.match_info["guild_id"])))


async def add_channel(request: web.Request) -> web.Response:
    spec = await _parse(request, ChannelSpec)
    engine = _engine(request)
    channel = engine.add_channel(
        request.match_info["guild_id"], spec.name, spec.type, spec.id, spec.topic, spec.nsfw, spec.parent_id
    )
    return json_response(channel_payload(channel, engine.world), 201)


async def add_member(request: web.Request) -> web.Response:
    spec = await _parse(request, MemberSpec)
    engine = _engine(request)
    member = engine.add_member(request.match_info["guild_id"], spec.user_id, spec.nick, spec.roles)
    return json_response(member_payload(member, engine.world.users[member.user_id]), 201)


async def add_bot(request: web.Request) -> web.Response:
    spec = await _parse(request, BotSpec)
    bot = _engine(request).add_bot(
        spec.username,
        spec.token,
        spec.id,
        spec.application_id,
        spec.guild_ids,
        spec.privileged_intents,
        spec.max_concurrency,
        spec.session_start_limit,
        spec.rest_global_limit,
    )
    return json_response(bot_summary(bot), 201)


async def patch_bot(request: web.Request) -> web.Response:
    patch = await _parse(request, BotPatch)
    bot = _engine(request).update_bot(request.match_info["bot_id"], **patch.model_dump(exclude_unset=True))
    return json_response(bot_summary(bot))


async def revoke_bot(request: web.Request) -> web.Response:
    closed = await _engine(request).revoke_token(request.match_info["bot_id"])
    return json_response({"closed": closed})


# --- acting as users ---------------------------------------------------------------------------------------


async def post_message(request: web.Request) -> web.Response:
    m = await _parse(request, MessageIn)
    message = _engine(request).post_user_message(
        m.author_id, m.content, m.channel_id, reply_to=m.reply_to, to_bot_id=m.to_bot_id, embeds=m.embeds
    )
    return json_response(message, 201)


async def edit_message(request: web.Request) -> web.Response:
    edit = await _parse(request, EditIn)
    m = request.match_info
    return json_response(_engine(request).edit_user_message(m["channel_id"], m["message_id"], edit.content))


async def delete_message(request: web.Request) -> web.Response:
    m = request.match_info
    _engine(request).delete_user_message(m["channel_id"], m["message_id"])
    return no_content()


async def history(request: web.Request) -> web.Response:
    q = request.query
    messages = _engine(request).history(
        request.match_info["channel_id"], _query_int(request, "limit", 50), q.get("before"), q.get("after")
    )
    return json_response(messages)


async def add_reaction(request: web.Request) -> web.Response:
    r = await _parse(request, ReactionIn)
    emoji = _engine(request).add_user_reaction(r.channel_id, r.message_id, r.user_id, r.emoji)
    return json_response({"emoji": emoji}, 201)


async def vote_poll(request: web.Request) -> web.Response:
    v = await _parse(request, VoteIn)
    return json_response(_engine(request).vote_poll(v.channel_id, v.message_id, v.user_id, v.answer_id), 201)


async def end_poll(request: web.Request) -> web.Response:
    p = await _parse(request, PollIn)
    return json_response(_engine(request).end_poll(p.channel_id, p.message_id))


async def invoke(request: web.Request) -> web.Response:
    i = await _parse(request, InteractionIn)
    return json_response(
        _engine(request).invoke_command(i.bot_id, i.user_id, i.channel_id, i.name, i.options, i.type), 201
    )


async def registered_commands(request: web.Request) -> web.Response:
    """?guild_id= for a guild's commands; without it, the global ones."""
    engine = _engine(request)
    return json_response(
        engine.registered_commands(request.match_info["bot_id"], request.query.get("guild_id"))
    )


async def voice(request: web.Request) -> web.Response:
    v = await _parse(request, VoiceIn)
    state = _engine(request).user_voice(
        v.guild_id, v.user_id, v.channel_id, self_mute=v.self_mute, self_deaf=v.self_deaf
    )
    return json_response(state)


async def voice_received(request: web.Request) -> web.Response:
    """Per (guild, channel, user): packets, duration, level, dominant frequency, jitter, speaking flags."""
    q = request.query
    return json_response(_engine(request).voice.received(q.get("guild_id"), q.get("channel_id")))


async def voice_pcm(request: web.Request) -> web.Response:
    """What one user sent in a channel, decoded: raw little-endian int16, 48 kHz, 2 channels interleaved."""
    q = request.query
    try:
        guild_id, channel_id, user_id = q["guild_id"], q["channel_id"], q["user_id"]
    except KeyError as missing:
        raise ApiError(400, 50035, f"{missing.args[0]} is required") from None
    samples = _engine(request).voice.pcm(guild_id, channel_id, user_id)
    return web.Response(
        body=samples.astype("<i2").tobytes(),
        content_type="application/octet-stream",
        headers={"X-Sample-Rate": str(SAMPLE_RATE), "X-Channels": str(CHANNELS)},
    )


async def clear_voice_received(request: web.Request) -> web.Response:
    _engine(request).voice.clear()
    return no_content()


async def drop_voice(request: web.Request) -> web.Response:
    target = await _parse(request, VoiceDropIn)
    return json_response({"dropped": _engine(request).voice.drop(target.bot_id, target.code)})


# --- observing and breaking --------------------------------------------------------------------------------


async def actions(request: web.Request) -> web.Response:
    """Records after `since`; with wait_s, long-polls until at least one arrives."""
    engine = _engine(request)
    q = request.query
    since = _query_int(request, "since", 0)
    bot_id, kind, limit = q.get("bot_id"), q.get("kind"), _query_int(request, "limit", 0)
    wait_s = _query_number(request, "wait_s", 0)
    if wait_s > 0:
        await engine.wait_actions(since, bot_id, kind, 1, min(wait_s, 60.0))
    found = engine.actions(since, bot_id, kind, limit)
    return json_response({"actions": [a.as_json() for a in found], "last_seq": engine.world.actions.last_seq})


async def stats(request: web.Request) -> web.Response:
    engine = _engine(request)
    bot_id = request.query.get("bot_id")
    bots = [engine.world.bot(bot_id)] if bot_id else list(engine.world.bots.values())
    return json_response(
        {
            "bots": [engine.hub.bot_stats(b) for b in bots],
            "connections": len(engine.hub.connections),
            "sessions": len(engine.hub.sessions),
        }
    )


async def drop(request: web.Request) -> web.Response:
    target = await _parse(request, BotTarget)
    return json_response({"dropped": _engine(request).hub.drop(target.bot_id)})


async def reconnect(request: web.Request) -> web.Response:
    target = await _parse(request, BotTarget)
    return json_response({"sent": await _engine(request).hub.request_reconnect(target.bot_id)})


async def invalidate_sessions(hub: GatewayHub, bot_id: str, resumable: bool) -> int:
    """Op 9 INVALID_SESSION to each connected session of the bot, as Discord sends when it drops a session;
    a non-resumable one is ended first, so a RESUME of it is refused."""
    sessions = [s for s in hub.by_bot.get(bot_id, []) if s.conn is not None]
    for session in sessions:
        conn = session.conn
        assert conn is not None
        if not resumable:
            hub.end_session(session)
        await conn.send(encode_op(rules.OP_INVALID_SESSION, resumable))
    return len(sessions)


async def invalidate(request: web.Request) -> web.Response:
    target = await _parse(request, InvalidateIn)
    return json_response(
        {"sent": await invalidate_sessions(_engine(request).hub, target.bot_id, target.resumable)}
    )


async def invalid_requests(request: web.Request) -> web.Response:
    return json_response(request.app[LIMITER].snapshot(time.monotonic()))


async def clear_invalid_requests(request: web.Request) -> web.Response:
    request.app[LIMITER].clear()
    return no_content()


async def start_traffic(request: web.Request) -> web.Response:
    spec = await _parse(request, TrafficRequest)
    return json_response(request.app[TRAFFIC].start(spec).as_json(), 201)


async def list_traffic(request: web.Request) -> web.Response:
    return json_response([job.as_json() for job in request.app[TRAFFIC].jobs.values()])


async def stop_traffic(request: web.Request) -> web.Response:
    raw = request.match_info.get("job_id")
    stopped = await request.app[TRAFFIC].stop(None if raw is None else int(raw))
    return json_response([job.as_json() for job in stopped])


async def scheduled_event_interest(request: web.Request) -> web.Response:
    body = await _parse(request, InterestIn)
    m = request.match_info
    events = _engine(request).scheduled_events
    return json_response(events.set_interest(m["guild_id"], m["event_id"], body.user_id, body.interested))


async def scheduled_events(request: web.Request) -> web.Response:
    engine = _engine(request)
    guild = engine.world.guild(request.match_info["guild_id"])
    return json_response(
        [event_payload(e, engine.world, with_user_count=True) for e in guild.scheduled_events.values()]
    )


def add_control_routes(app: web.Application) -> None:
    routes = [
        ("GET", "/health", health),
        ("GET", "/world", get_world),
        ("POST", "/world", load_world),
        ("GET", "/config", get_config),
        ("PATCH", "/config", patch_config),
        ("POST", "/users", add_user),
        ("POST", "/guilds", add_guild),
        ("GET", "/guilds/{guild_id}", get_guild),
        ("POST", "/guilds/{guild_id}/channels", add_channel),
        ("POST", "/guilds/{guild_id}/members", add_member),
        ("GET", "/guilds/{guild_id}/scheduled-events", scheduled_events),
        ("POST", "/guilds/{guild_id}/scheduled-events/{event_id}/users", scheduled_event_interest),
        ("POST", "/bots", add_bot),
        ("PATCH", "/bots/{bot_id}", patch_bot),
        ("POST", "/bots/{bot_id}/revoke", revoke_bot),
        ("GET", "/bots/{bot_id}/commands", registered_commands),
        ("POST", "/messages", post_message),
        ("GET", "/channels/{channel_id}/messages", history),
        ("PATCH", "/channels/{channel_id}/messages/{message_id}", edit_message),
        ("DELETE", "/channels/{channel_id}/messages/{message_id}", delete_message),
        ("POST", "/reactions", add_reaction),
        ("POST", "/polls/votes", vote_poll),
        ("POST", "/polls/end", end_poll),
        ("POST", "/interactions", invoke),
        ("POST", "/voice", voice),
        ("GET", "/voice/received", voice_received),
        ("GET", "/voice/pcm", voice_pcm),
        ("DELETE", "/voice/received", clear_voice_received),
        ("POST", "/voice/drop", drop_voice),
        ("GET", "/actions", actions),
        ("GET", "/stats", stats),
        ("POST", "/gateway/drop", drop),
        ("POST", "/gateway/reconnect", reconnect),
        ("POST", "/gateway/invalidate", invalidate),
        ("GET", "/invalid_requests", invalid_requests),
        ("DELETE", "/invalid_requests", clear_invalid_requests),
        ("POST", "/traffic", start_traffic),
        ("GET", "/traffic", list_traffic),
        ("DELETE", "/traffic", stop_traffic),
        ("DELETE", "/traffic/{job_id:\\d+}", stop_traffic),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, CONTROL_PREFIX + path, handler)
