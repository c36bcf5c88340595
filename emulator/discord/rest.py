"""Discord's REST API (/api/v10) as discord.py uses it, with Discord's authentication and rate limits."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import BodyPartReader, web

from . import errors
from .engine import ATTACHMENT_SIZE_LIMIT, Engine
from .errors import ApiError
from .http_util import error_response, json_response, no_content, read_json, read_object
from .payloads import application_payload, channel_payload, guild_base_payload, member_payload, user_payload
from .ratelimit import InvalidRequestCounter, Window, bucket_hash, major_parameter, ratelimit_headers, take
from .rules import ALL_PERMISSIONS, recommended_shards
from .world import Bot, Json

API_PREFIX = "/api/v10"
ENGINE = web.AppKey("engine", Engine)
_BOT = web.RequestKey("bot", Bot)
# Interaction callbacks and webhook routes authenticate with the token in the path and are exempt from the
# global limit; GET /gateway needs no authentication at all.
_WEBHOOK_ROUTES = ("/interactions/", "/webhooks/")
_UNAUTHENTICATED = frozenset({"/gateway"})
# Discord's limit of files per message.
MAX_FILES = 10
_FILE_FIELD = re.compile(r"files\[(\d{1,2})\]")
# Every Discord response passes Google's front end; discord.py treats a 429 without Via as a Cloudflare ban.
_VIA = {"Via": "1.1 google"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RestLimiter:
    """Per-token global windows, per-route buckets, and the per-IP invalid-request tally."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.global_windows: dict[str, Window] = {}
        self.buckets: dict[tuple[str, str, str], Window] = {}
        self.invalid = InvalidRequestCounter(engine.config.invalid_request_window_s)
        self.bans: dict[str, float] = {}

    def prune(self, now: float) -> None:
        """Forget expired windows so memory follows active clients, not all clients ever seen."""
        for bot_id in [k for k, w in self.global_windows.items() if w.reset_at <= now]:
            del self.global_windows[bot_id]
        for key in [k for k, w in self.buckets.items() if w.reset_at <= now]:
            del self.buckets[key]
        for ip in [ip for ip, until in self.bans.items() if until <= now]:
            del self.bans[ip]

    def count_invalid(self, ip: str, now: float) -> None:
        config = self.engine.config
        if self.invalid.add(ip, now) >= config.invalid_request_ban_threshold and config.invalid_request_ban_s:
            self.bans[ip] = now + config.invalid_request_ban_s

    def snapshot(self, now: float) -> Json:
        config = self.engine.config
        return {
            "window_s": config.invalid_request_window_s,
            "ban_threshold": config.invalid_request_ban_threshold,
            "counts": self.invalid.snapshot(now),
            "banned": {ip: round(until - now, 3) for ip, until in self.bans.items() if until > now},
        }

    def clear(self) -> None:
        self.invalid.clear()
        self.bans.clear()


LIMITER = web.AppKey("limiter", RestLimiter)


def _bot(request: web.Request) -> Bot:
    return request[_BOT]


def _engine(request: web.Request) -> Engine:
    return request.app[ENGINE]


def _reason(request: web.Request) -> str | None:
    reason = request.headers.get("X-Audit-Log-Reason")
    return None if reason is None else unquote(reason)


def _too_many(retry_after: float, *, is_global: bool, headers: dict[str, str]) -> web.Response:
    # Rounded up, so a client that sleeps exactly retry_after finds the window open again.
    retry_after = math.ceil(retry_after * 1000) / 1000
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
    extra = {
        **headers,
        **_VIA,
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Scope": "global" if is_global else "user",
    }
    if is_global:
        extra["X-RateLimit-Global"] = "true"
    return json_response(body, 429, extra)


@web.middleware
async def rest_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX + "/"):
        return await handler(request)
    limiter = request.app[LIMITER]
    engine = limiter.engine
    config = engine.config
    now = time.monotonic()
    ip = request.remote or ""
    if ip in limiter.bans and limiter.bans[ip] > now:
        # What a Cloudflare ban looks like: an HTML 429 without Discord's headers.
        return web.Response(
            status=429,
            text="<html><body>Error 1015: You are being rate limited.</body></html>",
            content_type="text/html",
        )
    resource = request.match_info.route.resource
    if resource is None or request.match_info.http_exception is not None:
        status = request.match_info.http_exception.status if request.match_info.http_exception else 404
        return json_response(
            {"message": f"{status}: {'Not Found' if status == 404 else 'Method Not Allowed'}", "code": 0},
            status,
            _VIA,
        )
    template = resource.canonical[len(API_PREFIX) :]
    webhook_route = template.startswith(_WEBHOOK_ROUTES)
    bot: Bot | None = None
    if template not in _UNAUTHENTICATED and not webhook_route:
        header = request.headers.get("Authorization", "")
        token = header[4:] if header.startswith("Bot ") else header
        bot = engine.world.bot_for_token(token)
        if bot is None:
            revoked = engine.world.tokens.get(token)
            if revoked is not None:
                revoked.stats.rest_401 += 1
            limiter.count_invalid(ip, now)
            return error_response(errors.unauthorized())
        request[_BOT] = bot
        bot.stats.rest_requests += 1
        limit = bot.rest_global_limit or config.rest_global_limit
        limiter.global_windows[bot.id], verdict = take(
            limiter.global_windows.get(bot.id), now, limit, config.rest_global_window_s
        )
        if not verdict.allowed:
            bot.stats.rest_429 += 1
            limiter.count_invalid(ip, now)
            return _too_many(verdict.reset_after, is_global=True, headers={})
    subject = bot.id if bot is not None else "webhook"
    route_limit, route_window = config.route_limits.get(
        f"{request.method} {template}", (config.route_limit, config.route_window_s)
    )
    bucket = bucket_hash(request.method, template)
    key = (subject, bucket, major_parameter(dict(request.match_info)))
    limiter.buckets[key], verdict = take(limiter.buckets.get(key), now, route_limit, route_window)
    headers = ratelimit_headers(verdict, bucket, time.time())
    if not verdict.allowed:
        if bot is not None:
            bot.stats.rest_429 += 1
        limiter.count_invalid(ip, now)
        return _too_many(verdict.reset_after, is_global=False, headers=headers)
    try:
        response = await handler(request)
    except ApiError as error:
        response = error_response(error)
    response.headers.update(headers)
    response.headers.update(_VIA)
    if response.status in (401, 403, 429):
        limiter.count_invalid(ip, now)
    return response


# --- handlers ----------------------------------------------------------------------------------------------


async def get_me(request: web.Request) -> web.Response:
    user = _bot(request).user
    return json_response(
        {**user_payload(user), "verified": True, "mfa_enabled": False, "flags": 0, "email": None}
    )


async def get_my_guilds(request: web.Request) -> web.Response:
    """GET /users/@me/guilds for a bot: the guilds it is in, as partial guilds, at most `limit` (200)."""
    engine, bot = _engine(request), _bot(request)
    try:
        limit = min(max(int(request.query.get("limit", "200")), 1), 200)
    except ValueError:
        raise errors.invalid_form("limit", "Value is not int.") from None
    guilds = [engine.world.guilds[guild_id] for guild_id in sorted(bot.guild_ids, key=int)[:limit]]
    # A bot holds its managed role's ADMINISTRATOR everywhere: every permission.
    permissions = str(ALL_PERMISSIONS)
    return json_response(
        [
            {"id": guild.id, "name": guild.name, "icon": None, "owner": False, "permissions": permissions}
            for guild in guilds
        ]
    )


async def get_user(request: web.Request) -> web.Response:
    return json_response(user_payload(_engine(request).world.user(request.match_info["user_id"])))


async def get_application(request: web.Request) -> web.Response:
    engine = _engine(request)
    return json_response(application_payload(_bot(request), engine.system_user))


async def edit_application(request: web.Request) -> web.Response:
    """PATCH /applications/@me: of the application's fields only the interactions endpoint is emulated."""
    body = await read_object(request)
    for name in body:
        if name != "interactions_endpoint_url":
            raise errors.invalid_form(name, "not an editable application field in the emulator")
    url = body.get("interactions_endpoint_url")
    if url is not None and not isinstance(url, str):
        raise errors.invalid_form("interactions_endpoint_url", "Must be a string or null.")
    engine, bot = _engine(request), _bot(request)
    await engine.set_interactions_endpoint(bot, url)
    return json_response(application_payload(bot, engine.system_user))


async def get_gateway(request: web.Request) -> web.Response:
    return json_response({"url": _engine(request).hub.gateway_url})


async def get_gateway_bot(request: web.Request) -> web.Response:
    engine = _engine(request)
    bot = _bot(request)
    limit = engine.hub.bot_stats(bot)["session_start_limit"]
    return json_response(
        {
            "url": engine.hub.gateway_url,
            "shards": recommended_shards(len(bot.guild_ids), engine.config.guilds_per_recommended_shard),
            "session_start_limit": limit,
        }
    )


async def open_dm(request: web.Request) -> web.Response:
    body = await read_object(request)
    return json_response(_engine(request).bot_open_dm(_bot(request), str(body.get("recipient_id"))))


async def get_channel(request: web.Request) -> web.Response:
    engine = _engine(request)
    channel = engine.world.channel(request.match_info["channel_id"])
    if not engine.world.can_see(_bot(request), channel):
        raise errors.missing_access()
    return json_response(channel_payload(channel, engine.world))


async def _message_body(request: web.Request, *, in_data: bool = False) -> Json:
    """JSON, or multipart with payload_json and files[n] as discord.py sends attachments, checked as Discord
    checks them: at most MAX_FILES files of at most the attachment size limit each, and every attachment
    the payload describes uploaded. `in_data`: the message is the payload's `data` (interaction callbacks)."""
    if not request.content_type.startswith("multipart/"):
        return await read_object(request)
    body: Json = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    reader = await request.multipart()
    engine = _engine(request)
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "payload_json":
            loaded = orjson.loads(await part.read())
            body = loaded if isinstance(loaded, dict) else {}
        elif part.filename and part.name is not None:
            field = _FILE_FIELD.fullmatch(part.name)
            if field is None:
                raise errors.invalid_form(part.name, "Unknown file field (files[n] expected).")
            data = await _file_data(part)
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            files[field.group(1)] = (part.filename, content_type, data)
    if len(files) > MAX_FILES:
        raise ApiError(400, 30015, f"Maximum number of attachments in a message reached ({MAX_FILES})")
    message = body.setdefault("data", {}) if in_data else body
    described = {str(a.get("id")): a for a in message.get("attachments") or [] if isinstance(a, dict)}
    for position, attachment_id in enumerate(described):
        if attachment_id not in files:
            raise errors.invalid_form(f"attachments.{position}.id", "Unknown attachment: no files[n] for it.")
    # Absolute, as Discord's CDN URLs are: the address the client reached the emulator at.
    base = (engine.config.public_url or str(request.url.origin())).rstrip("/")
    attachments = []
    for index, (filename, content_type, data) in files.items():
        attachment_id = engine.ids.next()
        channel_id = request.match_info.get("channel_id", "0")
        url = f"{base}/attachments/{channel_id}/{attachment_id}/{filename}"
        engine.store_attachment(attachment_id, content_type, data)
        attachments.append(
            {
                "filename": filename,
                "size": len(data),
                "content_type": content_type,
                "id": attachment_id,
                "url": url,
                "proxy_url": url,
                "description": described.get(index, {}).get("description"),
            }
        )
    message["attachments"] = attachments
    return body


async def _file_data(part: BodyPartReader) -> bytes:
    """A file's bytes, read until they pass the size limit (aiohttp's own cap on a part is far lower)."""
    data = bytearray()
    while chunk := await part.read_chunk():
        data += chunk
        if len(data) > ATTACHMENT_SIZE_LIMIT:
            raise ApiError(413, 40005, "Request entity too large")
    return bytes(data)


async def get_attachment(request: web.Request) -> web.Response:
    """The CDN: an uploaded file's bytes, by the URL its message carries."""
    stored = _engine(request).attachment(request.match_info["attachment_id"])
    if stored is None:
        raise web.HTTPNotFound()
    content_type, data = stored
    return web.Response(body=data, content_type=content_type)


async def list_messages(request: web.Request) -> web.Response:
    engine = _engine(request)
    bot = _bot(request)
    channel = engine.world.channel(request.match_info["channel_id"])
    if not engine.world.can_see(bot, channel):
        raise errors.missing_access()
    query = request.query
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        raise errors.invalid_form("limit", "Value is not int.") from None
    if "around" in query:
        around = int(query["around"])
        ids = sorted(channel.messages, key=lambda m: abs(int(m) - around))[:limit]
        return json_response(
            [engine.view_for(bot, channel, channel.messages[m]) for m in sorted(ids, key=int, reverse=True)]
        )
    return json_response(
        engine.history(channel.id, limit, query.get("before"), query.get("after"), viewer=bot)
    )


async def get_message(request: web.Request) -> web.Response:
    engine = _engine(request)
    bot = _bot(request)
    channel = engine.world.channel(request.match_info["channel_id"])
    if not engine.world.can_see(bot, channel):
        raise errors.missing_access()
    stored = engine.world.message(channel, request.match_info["message_id"])
    return json_response(engine.view_for(bot, channel, stored))


async def create_message(request: web.Request) -> web.Response:
    body = await _message_body(request)
    engine = _engine(request)
    return json_response(engine.bot_send_message(_bot(request), request.match_info["channel_id"], body))


async def edit_message(request: web.Request) -> web.Response:
    body = await read_object(request)
    m = request.match_info
    return json_response(
        _engine(request).bot_edit_message(_bot(request), m["channel_id"], m["message_id"], body)
    )


async def crosspost_message(request: web.Request) -> web.Response:
    m = request.match_info
    return json_response(_engine(request).bot_crosspost(_bot(request), m["channel_id"], m["message_id"]))


async def delete_message(request: web.Request) -> web.Response:
    m = request.match_info
    _engine(request).bot_delete_message(_bot(request), m["channel_id"], m["message_id"], _reason(request))
    return no_content()


async def add_reaction(request: web.Request) -> web.Response:
    m = request.match_info
    _engine(request).bot_reaction(_bot(request), m["channel_id"], m["message_id"], m["emoji"], add=True)
    return no_content()


async def remove_reaction(request: web.Request) -> web.Response:
    m = request.match_info
    _engine(request).bot_reaction(_bot(request), m["channel_id"], m["message_id"], m["emoji"], add=False)
    return no_content()


async def typing(request: web.Request) -> web.Response:
    _engine(request).bot_typing(_bot(request), request.match_info["channel_id"])
    return no_content()


async def get_guild(request: web.Request) -> web.Response:
    engine = _engine(request)
    guild = engine.world.guild(request.match_info["guild_id"])
    if guild.id not in _bot(request).guild_ids:
        raise errors.missing_access()
    return json_response({**guild_base_payload(guild), "approximate_member_count": len(guild.members)})


async def get_member(request: web.Request) -> web.Response:
    engine = _engine(request)
    guild = engine.world.guild(request.match_info["guild_id"])
    if guild.id not in _bot(request).guild_ids:
        raise errors.missing_access()
    member = engine.world.member(guild, request.match_info["user_id"])
    return json_response(member_payload(member, engine.world.users[member.user_id]))


async def edit_me(request: web.Request) -> web.Response:
    body = await read_object(request)
    return json_response(_engine(request).bot_edit_me(_bot(request), request.match_info["guild_id"], body))


async def edit_member(request: web.Request) -> web.Response:
    body = await read_object(request)
    m = request.match_info
    engine = _engine(request)
    return json_response(
        engine.bot_edit_member(_bot(request), m["guild_id"], m["user_id"], body, _reason(request))
    )


async def kick(request: web.Request) -> web.Response:
    m = request.match_info
    _engine(request).bot_kick(_bot(request), m["guild_id"], m["user_id"], _reason(request))
    return no_content()


async def ban(request: web.Request) -> web.Response:
    body = await read_object(request)
    m = request.match_info
    _engine(request).bot_ban(_bot(request), m["guild_id"], m["user_id"], body, _reason(request))
    return no_content()


async def unban(request: web.Request) -> web.Response:
    m = request.match_info
    _engine(request).bot_unban(_bot(request), m["guild_id"], m["user_id"], _reason(request))
    return no_content()


async def interaction_callback(request: web.Request) -> web.Response:
    body = await _message_body(request, in_data=True)
    m = request.match_info
    response = _engine(request).interaction_callback(m["webhook_id"], m["webhook_token"], body)
    return json_response(response) if request.query.get("with_response") in ("1", "true") else no_content()


async def get_original(request: web.Request) -> web.Response:
    m = request.match_info
    return json_response(_engine(request).get_original(m["webhook_id"], m["webhook_token"]))


async def edit_original(request: web.Request) -> web.Response:
    body = await _message_body(request)
    m = request.match_info
    return json_response(_engine(request).edit_original(m["webhook_id"], m["webhook_token"], body))


async def delete_original(request: web.Request) -> web.Response:
    m = request.match_info
    _engine(request).delete_original(m["webhook_id"], m["webhook_token"])
    return no_content()


async def followup(request: web.Request) -> web.Response:
    body = await _message_body(request)
    m = request.match_info
    return json_response(_engine(request).followup(m["webhook_id"], m["webhook_token"], body))


async def list_commands(request: web.Request) -> web.Response:
    m = request.match_info
    return json_response(
        _engine(request).list_commands(_bot(request), m["application_id"], m.get("guild_id"))
    )


async def put_commands(request: web.Request) -> web.Response:
    body: Any = await read_json(request)
    m = request.match_info
    engine = _engine(request)
    return json_response(engine.put_commands(_bot(request), m["application_id"], m.get("guild_id"), body))


async def post_command(request: web.Request) -> web.Response:
    body = await read_object(request)
    m = request.match_info
    command, created = _engine(request).post_command(
        _bot(request), m["application_id"], m.get("guild_id"), body
    )
    return json_response(command, 201 if created else 200)


def _with_user_count(request: web.Request) -> bool:
    return request.query.get("with_user_count", "false").lower() in ("true", "1")


async def create_scheduled_event(request: web.Request) -> web.Response:
    body = await read_object(request)
    events = _engine(request).scheduled_events
    return json_response(events.create(_bot(request), request.match_info["guild_id"], body))


async def list_scheduled_events(request: web.Request) -> web.Response:
    events = _engine(request).scheduled_events
    guild_id = request.match_info["guild_id"]
    return json_response(events.all(_bot(request), guild_id, with_user_count=_with_user_count(request)))


async def get_scheduled_event(request: web.Request) -> web.Response:
    m = request.match_info
    events = _engine(request).scheduled_events
    found = events.get(_bot(request), m["guild_id"], m["event_id"], with_user_count=_with_user_count(request))
    return json_response(found)


async def modify_scheduled_event(request: web.Request) -> web.Response:
    body = await read_object(request)
    m = request.match_info
    return json_response(
        _engine(request).scheduled_events.modify(_bot(request), m["guild_id"], m["event_id"], body)
    )


async def delete_scheduled_event(request: web.Request) -> web.Response:
    m = request.match_info
    _engine(request).scheduled_events.delete(_bot(request), m["guild_id"], m["event_id"])
    return no_content()


async def scheduled_event_users(request: web.Request) -> web.Response:
    m = request.match_info
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise errors.invalid_form("limit", "Value is not int.") from None
    if not 1 <= limit <= 100:
        raise errors.invalid_form("limit", "Must be between 1 and 100.")
    events = _engine(request).scheduled_events
    return json_response(events.users(_bot(request), m["guild_id"], m["event_id"], limit))


def add_rest_routes(app: web.Application) -> None:
    # "@me" routes are registered before their {id} siblings: aiohttp matches in registration order.
    routes = [
        ("GET", "/users/@me", get_me),
        ("GET", "/users/@me/guilds", get_my_guilds),
        ("POST", "/users/@me/channels", open_dm),
        ("GET", "/users/{user_id}", get_user),
        ("GET", "/oauth2/applications/@me", get_application),
        ("GET", "/applications/@me", get_application),
        ("PATCH", "/applications/@me", edit_application),
        ("GET", "/gateway", get_gateway),
        ("GET", "/gateway/bot", get_gateway_bot),
        ("GET", "/channels/{channel_id}", get_channel),
        ("GET", "/channels/{channel_id}/messages", list_messages),
        ("POST", "/channels/{channel_id}/messages", create_message),
        ("GET", "/channels/{channel_id}/messages/{message_id}", get_message),
        ("PATCH", "/channels/{channel_id}/messages/{message_id}", edit_message),
        ("DELETE", "/channels/{channel_id}/messages/{message_id}", delete_message),
        ("POST", "/channels/{channel_id}/messages/{message_id}/crosspost", crosspost_message),
        ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", add_reaction),
        ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", remove_reaction),
        ("POST", "/channels/{channel_id}/typing", typing),
        ("GET", "/guilds/{guild_id}", get_guild),
        ("PATCH", "/guilds/{guild_id}/members/@me", edit_me),
        ("GET", "/guilds/{guild_id}/members/{user_id}", get_member),
        ("PATCH", "/guilds/{guild_id}/members/{user_id}", edit_member),
        ("DELETE", "/guilds/{guild_id}/members/{user_id}", kick),
        ("PUT", "/guilds/{guild_id}/bans/{user_id}", ban),
        ("DELETE", "/guilds/{guild_id}/bans/{user_id}", unban),
        ("GET", "/guilds/{guild_id}/scheduled-events", list_scheduled_events),
        ("POST", "/guilds/{guild_id}/scheduled-events", create_scheduled_event),
        ("GET", "/guilds/{guild_id}/scheduled-events/{event_id}", get_scheduled_event),
        ("PATCH", "/guilds/{guild_id}/scheduled-events/{event_id}", modify_scheduled_event),
        ("DELETE", "/guilds/{guild_id}/scheduled-events/{event_id}", delete_scheduled_event),
        ("GET", "/guilds/{guild_id}/scheduled-events/{event_id}/users", scheduled_event_users),
        ("POST", "/interactions/{webhook_id}/{webhook_token}/callback", interaction_callback),
        ("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", get_original),
        ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", edit_original),
        ("DELETE", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", delete_original),
        ("POST", "/webhooks/{webhook_id}/{webhook_token}", followup),
        ("GET", "/applications/{application_id}/commands", list_commands),
        ("PUT", "/applications/{application_id}/commands", put_commands),
        ("POST", "/applications/{application_id}/commands", post_command),
        ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", list_commands),
        ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", put_commands),
        ("POST", "/applications/{application_id}/guilds/{guild_id}/commands", post_command),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, API_PREFIX + path, handler)
    app.router.add_route("GET", "/attachments/{channel_id}/{attachment_id}/{filename}", get_attachment)
