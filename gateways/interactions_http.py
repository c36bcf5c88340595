"""The interactions receiver: Discord POSTs every interaction of a bot whose application has an
Interactions Endpoint URL here, instead of sending it over the gateway session.

Nothing behind it has to be up for a slash command to be acknowledged: the receiver verifies the request's
Ed25519 signature (401 otherwise, as Discord requires), writes the interaction to `discord.events` as the
gateway would, and answers in the HTTP response itself: type 5 (deferred) for a command, the library's
titles (type 8) for an autocomplete, type 1 for Discord's PING. The processors' answer then edits the
deferred original through the runners, as for a gateway-delivered command. A runner killed mid-stream
therefore loses no command: only the receiver's own restart would, and it holds no state.

Each bot's endpoint is `<DEEP_INTERACTIONS_URL>/<bot id>`; the runner that connects the bot sets it and
publishes the application's public key (`verify_key` of GET /applications/@me) in Redis for this process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web
from aiokafka import AIOKafkaProducer
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateways import actions, dispatch
from gateways.autocomplete import (
    APPLICATION_COMMAND_AUTOCOMPLETE,
    MusicLibrary,
    focused_value,
    matching_titles,
)
from gateways.deferrals import APPLICATION_COMMAND
from gateways.sessions import connect_redis
from settings import Settings
from settings.runtime import settle_garbage_collector
from streams.catalog import DISCORD_EVENTS
from streams.codec import encode_key
from streams.sealing import DataKeys, seal_envelope
from vault.user_keys import user_keys

log = logging.getLogger(__name__)

PING = 1
PONG: dict[str, Any] = {"type": 1}
# An interaction must be acknowledged within 3 s, so a signed request much older than that can only be a
# replay; the margin covers clock skew between Discord and this host.
MAX_SIGNATURE_AGE_S = 30.0
# A public key changes only when the owner resets it; read again after this long, or at once on a miss.
KEY_CACHE_S = 60.0


def signature_valid(
    public_key_hex: str,
    signature_hex: str,
    timestamp: str,
    body: bytes,
    now: float,
    max_age_s: float = MAX_SIGNATURE_AGE_S,
) -> bool:
    """Discord signs the X-Signature-Timestamp header followed by the raw body. A signature that does not
    verify, or a timestamp too far from `now` (unix seconds), is refused."""
    try:
        sent_at = int(timestamp)
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    if abs(now - sent_at) > max_age_s:
        return False
    try:
        key.verify(signature, timestamp.encode() + body)
    except InvalidSignature:
        return False
    return True


class VerifyKeys:
    """Each bot's application public key in Redis: written by the runner that connects the bot, read (and
    cached) by the receivers."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}gw:verify-key:"
        self._cached: dict[str, tuple[str, float]] = {}

    async def publish(self, bot_id: str, public_key_hex: str) -> None:
        await self._redis.set(self._prefix + bot_id, public_key_hex)

    async def forget(self, bot_id: str) -> None:
        self._cached.pop(bot_id, None)
        await self._redis.delete(self._prefix + bot_id)

    async def get(self, bot_id: str) -> str | None:
        now = time.monotonic()
        cached = self._cached.get(bot_id)
        if cached is not None and now - cached[1] < KEY_CACHE_S:
            return cached[0]
        raw = await self._redis.get(self._prefix + bot_id)
        if raw is None:
            self._cached.pop(bot_id, None)
            return None
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._cached[bot_id] = (key, now)
        return key


class InteractionsReceiver:
    def __init__(
        self,
        keys: VerifyKeys,
        producer: AIOKafkaProducer,
        events_topic: str,
        library: MusicLibrary,
        data_keys: DataKeys,
    ) -> None:
        self._keys = keys
        self._data_keys = data_keys
        self._producer = producer
        self._events_topic = events_topic
        self._library = library
        self.app = web.Application()
        self.app.router.add_post("/{bot_id:[0-9]{1,20}}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        bot_id = request.match_info["bot_id"]
        body = await request.read()
        key = await self._keys.get(bot_id)
        signed = signature_valid(
            key or "",
            request.headers.get("X-Signature-Ed25519", ""),
            request.headers.get("X-Signature-Timestamp", ""),
            body,
            time.time(),
        )
        if not signed:
            return web.json_response({"error": "invalid request signature"}, status=401)
        try:
            interaction = orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.json_response({"error": "body: not JSON"}, status=400)
        if not isinstance(interaction, dict) or not isinstance(interaction.get("type"), int):
            return web.json_response({"error": "type: missing"}, status=400)
        kind = interaction["type"]
        if kind == PING:
            return web.json_response(PONG)
        if kind not in (APPLICATION_COMMAND, APPLICATION_COMMAND_AUTOCOMPLETE) or not interaction.get("id"):
            # Components and modals: the platform sends none, so none can come back.
            return web.json_response({"error": f"type: {kind} is not handled"}, status=400)
        envelope = dispatch.interaction_envelope(bot_id, interaction, datetime.now(UTC))
        sealed = await seal_envelope(envelope, self._data_keys)
        # On Kafka before it is acknowledged: a command answered "thinking" is never one the platform lost.
        await self._producer.send_and_wait(
            self._events_topic, DISCORD_EVENTS.codec.encode(sealed), key=encode_key(envelope.key)
        )
        if kind == APPLICATION_COMMAND:
            return web.json_response(actions.DEFERRAL)
        focused = focused_value(interaction)
        choices = matching_titles(await self._library.titles(), focused[2]) if focused else []
        return web.json_response(actions.autocomplete_result(choices))


async def serve(settings: Settings, host: str, port: int) -> None:
    """Receive interactions on host:port until SIGTERM or SIGINT."""
    settle_garbage_collector()
    redis = connect_redis(settings.redis_url)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, client_id="deep-interactions", acks="all", linger_ms=1
    )
    await producer.start()
    async with user_keys(settings) as data_keys:
        receiver = InteractionsReceiver(
            VerifyKeys(redis, settings.topic_namespace),
            producer,
            DISCORD_EVENTS.name_in(settings.topic_namespace),
            MusicLibrary(settings.music_library_dir),
            data_keys,
        )
        runner = web.AppRunner(receiver.app, access_log=None, handle_signals=False)
        await runner.setup()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await web.TCPSite(runner, host, port).start()
            log.info("receiving interactions on %s:%d", host, port)
            await stop.wait()
        finally:
            await runner.cleanup()
            await producer.stop()
            await redis.aclose()
