"""EmulatorControl: an aiohttp client for the control API, for tests and benchmarks in other processes."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from .world import Json


class EmulatorError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"emulator answered {status}: {body}")
        self.status = status
        self.body = body


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class EmulatorControl:
    """Same operations as DiscordEmulator's helpers, over HTTP: `async with EmulatorControl(url) as c:`."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> EmulatorControl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else None
        query = {k: str(v) for k, v in _drop_none(params or {}).items()}
        async with self._session.request(
            method, f"{self.base_url}/_control{path}", data=data, headers=headers, params=query
        ) as response:
            raw = await response.read()
            payload = orjson.loads(raw) if raw else None
            if response.status >= 400:
                raise EmulatorError(response.status, payload)
            return payload

    # world
    async def health(self) -> Json:
        result: Json = await self._request("GET", "/health")
        return result

    async def world(self) -> Json:
        result: Json = await self._request("GET", "/world")
        return result

    async def load_world(self, spec: Json) -> Json:
        result: Json = await self._request("POST", "/world", spec)
        return result

    async def configure(self, **changes: Any) -> Json:
        result: Json = await self._request("PATCH", "/config", changes)
        return result

    async def add_user(self, username: str, id: str | None = None, global_name: str | None = None) -> Json:
        result: Json = await self._request(
            "POST", "/users", _drop_none({"username": username, "id": id, "global_name": global_name})
        )
        return result

    async def add_guild(self, name: str, id: str | None = None, owner_id: str | None = None) -> Json:
        result: Json = await self._request(
            "POST", "/guilds", _drop_none({"name": name, "id": id, "owner_id": owner_id})
        )
        return result

    async def add_channel(self, guild_id: str, name: str, type: int = 0, id: str | None = None) -> Json:
        result: Json = await self._request(
            "POST", f"/guilds/{guild_id}/channels", _drop_none({"name": name, "type": type, "id": id})
        )
        return result

    async def add_member(self, guild_id: str, user_id: str, nick: str | None = None) -> Json:
        result: Json = await self._request(
            "POST", f"/guilds/{guild_id}/members", _drop_none({"user_id": user_id, "nick": nick})
        )
        return result

    async def add_bot(self, **spec: Any) -> Json:
        """BotSpec fields: token, id, username, application_id, guild_ids, privileged_intents, ..."""
        result: Json = await self._request("POST", "/bots", spec)
        return result

    async def update_bot(self, bot_id: str, **changes: Any) -> Json:
        result: Json = await self._request("PATCH", f"/bots/{bot_id}", changes)
        return result

    async def revoke_token(self, bot_id: str) -> int:
        result: Json = await self._request("POST", f"/bots/{bot_id}/revoke")
        return int(result["closed"])

    # acting as users
    async def post_user_message(
        self,
        author_id: str,
        content: str = "",
        channel_id: str | None = None,
        *,
        reply_to: str | None = None,
        to_bot_id: str | None = None,
    ) -> Json:
        result: Json = await self._request(
            "POST",
            "/messages",
            _drop_none(
                {
                    "author_id": author_id,
                    "content": content,
                    "channel_id": channel_id,
                    "reply_to": reply_to,
                    "to_bot_id": to_bot_id,
                }
            ),
        )
        return result

    async def edit_user_message(self, channel_id: str, message_id: str, content: str) -> Json:
        result: Json = await self._request(
            "PATCH", f"/channels/{channel_id}/messages/{message_id}", {"content": content}
        )
        return result

    async def delete_user_message(self, channel_id: str, message_id: str) -> None:
        await self._request("DELETE", f"/channels/{channel_id}/messages/{message_id}")

    async def add_user_reaction(self, channel_id: str, message_id: str, user_id: str, emoji: str) -> Json:
        result: Json = await self._request(
            "POST",
            "/reactions",
            {"channel_id": channel_id, "message_id": message_id, "user_id": user_id, "emoji": emoji},
        )
        return result

    async def vote_poll(self, channel_id: str, message_id: str, user_id: str, answer_id: int) -> Json:
        body = {
            "channel_id": channel_id,
            "message_id": message_id,
            "user_id": user_id,
            "answer_id": answer_id,
        }
        result: Json = await self._request("POST", "/polls/votes", body)
        return result

    async def end_poll(self, channel_id: str, message_id: str) -> Json:
        """The poll's duration is up: Discord finalizes the results (MESSAGE_UPDATE)."""
        result: Json = await self._request(
            "POST", "/polls/end", {"channel_id": channel_id, "message_id": message_id}
        )
        return result

    async def invoke_command(
        self,
        bot_id: str,
        user_id: str,
        channel_id: str,
        name: str,
        options: list[Json] | None = None,
        interaction_type: int = 2,
    ) -> Json:
        """A slash command (type 2), or an autocomplete request (type 4: one option is `focused`)."""
        result: Json = await self._request(
            "POST",
            "/interactions",
            {
                "bot_id": bot_id,
                "user_id": user_id,
                "channel_id": channel_id,
                "name": name,
                "options": options or [],
                "type": interaction_type,
            },
        )
        return result

    async def registered_commands(self, bot_id: str, guild_id: str | None = None) -> list[Json]:
        """The bot's commands in a guild (or its global ones, without a guild)."""
        path = f"/bots/{bot_id}/commands" + (f"?guild_id={guild_id}" if guild_id else "")
        result: list[Json] = await self._request("GET", path)
        return result

    async def user_voice(self, guild_id: str, user_id: str, channel_id: str | None) -> Json:
        result: Json = await self._request(
            "POST", "/voice", {"guild_id": guild_id, "user_id": user_id, "channel_id": channel_id}
        )
        return result

    async def voice_received(self, guild_id: str | None = None, channel_id: str | None = None) -> Json:
        """What the voice server received: `recordings` (one per guild, channel and user: packets,
        duration_s, timestamp_duration_s, rms, dominant_hz, jitter_ms, speaking, rejected) and the
        server-wide `rejected` counts."""
        result: Json = await self._request(
            "GET", "/voice/received", params={"guild_id": guild_id, "channel_id": channel_id}
        )
        return result

    async def voice_pcm(self, guild_id: str, channel_id: str, user_id: str) -> bytes:
        """What one user sent in a channel, decoded: little-endian int16, 48 kHz, stereo interleaved."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        query = {"guild_id": guild_id, "channel_id": channel_id, "user_id": user_id}
        async with self._session.get(f"{self.base_url}/_control/voice/pcm", params=query) as response:
            body = await response.read()
            if response.status >= 400:
                raise EmulatorError(response.status, orjson.loads(body) if body else None)
            return body

    async def clear_voice_received(self) -> None:
        await self._request("DELETE", "/voice/received")

    async def drop_voice(self, bot_id: str | None = None, code: int = 4015) -> int:
        """Close voice WebSockets with `code` (4015: the client resumes; 4014/4006: the session ends)."""
        body = _drop_none({"bot_id": bot_id, "code": code})
        result: Json = await self._request("POST", "/voice/drop", body)
        return int(result["dropped"])

    async def scheduled_events(self, guild_id: str) -> list[Json]:
        """The guild's scheduled events, with how many users are interested in each."""
        result: list[Json] = await self._request("GET", f"/guilds/{guild_id}/scheduled-events")
        return result

    async def mark_interested(
        self, guild_id: str, event_id: str, user_id: str, interested: bool = True
    ) -> Json:
        """A member marks (or unmarks) themselves interested in a scheduled event."""
        body = {"user_id": user_id, "interested": interested}
        result: Json = await self._request(
            "POST", f"/guilds/{guild_id}/scheduled-events/{event_id}/users", body
        )
        return result

    # observing and breaking
    async def actions(
        self,
        since: int = 0,
        bot_id: str | None = None,
        kind: str | None = None,
        limit: int = 0,
        wait_s: float = 0.0,
    ) -> list[Json]:
        result: Json = await self._request(
            "GET",
            "/actions",
            params={
                "since": since,
                "bot_id": bot_id,
                "kind": kind,
                "limit": limit or None,
                "wait_s": wait_s or None,
            },
        )
        actions: list[Json] = result["actions"]
        return actions

    async def history(self, channel_id: str, limit: int = 50) -> list[Json]:
        result: list[Json] = await self._request(
            "GET", f"/channels/{channel_id}/messages", params={"limit": limit}
        )
        return result

    async def stats(self, bot_id: str) -> Json:
        result: Json = await self._request("GET", "/stats", params={"bot_id": bot_id})
        stats: Json = result["bots"][0]
        return stats

    async def drop_connections(self, bot_id: str | None = None) -> int:
        result: Json = await self._request("POST", "/gateway/drop", _drop_none({"bot_id": bot_id}))
        return int(result["dropped"])

    async def send_reconnect(self, bot_id: str | None = None) -> int:
        result: Json = await self._request("POST", "/gateway/reconnect", _drop_none({"bot_id": bot_id}))
        return int(result["sent"])

    async def invalidate_sessions(self, bot_id: str, resumable: bool) -> int:
        """Op 9 INVALID_SESSION to the bot's sessions (`resumable` is its `d`)."""
        body = {"bot_id": bot_id, "resumable": resumable}
        result: Json = await self._request("POST", "/gateway/invalidate", body)
        return int(result["sent"])

    async def invalid_requests(self) -> Json:
        result: Json = await self._request("GET", "/invalid_requests")
        return result

    async def clear_invalid_requests(self) -> None:
        await self._request("DELETE", "/invalid_requests")

    async def start_traffic(self, **request: Any) -> Json:
        """guild_ids | channel_ids, rate_per_s, duration_s | count, content template."""
        result: Json = await self._request("POST", "/traffic", request)
        return result

    async def traffic(self) -> list[Json]:
        result: list[Json] = await self._request("GET", "/traffic")
        return result

    async def stop_traffic(self, job_id: int | None = None) -> list[Json]:
        result: list[Json] = await self._request(
            "DELETE", "/traffic" if job_id is None else f"/traffic/{job_id}"
        )
        return result
