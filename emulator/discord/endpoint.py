"""An application's Interactions Endpoint URL: Discord POSTs each interaction there, signed with the
application's Ed25519 key, instead of sending INTERACTION_CREATE over the gateway; the HTTP response body is
the interaction response.

The signature covers the X-Signature-Timestamp header followed by the raw body; the app checks it with the
public key Discord shows as `verify_key`. Setting the URL is refused unless the endpoint answers a signed
PING with a PONG and refuses a badly signed one with 401, as Discord checks before saving it.
"""

from __future__ import annotations

import logging
import time

import aiohttp
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .world import Json

log = logging.getLogger(__name__)

PING = 1
PONG = 1


def new_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def verify_key(key: Ed25519PrivateKey) -> str:
    """The public half, hex-encoded as Discord shows it."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def signed_headers(key: Ed25519PrivateKey, body: bytes, timestamp: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Signature-Ed25519": key.sign(timestamp.encode() + body).hex(),
        "X-Signature-Timestamp": timestamp,
    }


class EndpointPoster:
    """POSTs signed interactions to applications' endpoints on one lazily opened session."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def post(
        self, key: Ed25519PrivateKey, url: str, payload: Json, timeout_s: float, *, forged: bool = False
    ) -> tuple[int, Json | None]:
        """(HTTP status, JSON body when it is an object); status 0 when the endpoint could not be reached
        or did not answer within `timeout_s`. `forged` signs with a key that is not the application's."""
        body = orjson.dumps(payload)
        signer = new_signing_key() if forged else key
        headers = signed_headers(signer, body, str(int(time.time())))
        try:
            async with self._http().post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                raw = await response.read()
                try:
                    answer = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    answer = None
                return response.status, answer if isinstance(answer, dict) else None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("interactions endpoint %s unreachable: %r", url, exc)
            return 0, None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
