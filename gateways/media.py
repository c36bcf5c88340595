"""Media fetched from the URLs owners give: persona images for Discord, which takes avatars and banners as
data URIs, from their agents' configuration, and audio that voice plays.

An owner's URL must not make the platform reach inside its own network (cloud metadata at 169.254.169.254,
Redis, the configuration API): every address a URL leads to, its own and each redirect's, must be public.
Names are checked as they are resolved, by the session's resolver, so a name that resolves differently the
second time (DNS rebinding) is checked where it is connected to; literal addresses, which aiohttp does not
resolve, are checked before each request. `allow_private` (DEEP_MEDIA_ALLOW_PRIVATE) lifts the rule for a
development machine serving images on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IMAGE_MAX_BYTES = 10 * 1024 * 1024
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_REDIRECTS = 3
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=15.0)


class MediaRefused(Exception):
    """The image cannot be used: the message names the field and the reason (never a secret)."""


class NotPublic(OSError):
    """A name resolved to an address that is not public (raised inside the connector)."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicOnlyResolver(AbstractResolver):
    """The default resolver, refusing names that lead to any address that is not public."""

    def __init__(self) -> None:
        self._resolver = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if not results or not all(is_public(result["host"]) for result in results):
            raise NotPublic(f"{host} is not a public address")
        return results

    async def close(self) -> None:
        await self._resolver.close()


def media_session(allow_private: bool) -> aiohttp.ClientSession:
    """The session persona images are fetched with (no cookies; public addresses only unless allowed)."""
    connector = aiohttp.TCPConnector(resolver=None if allow_private else PublicOnlyResolver())
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


async def image_data_uri(session: aiohttp.ClientSession, field: str, url: str, *, allow_private: bool) -> str:
    """The image at `url` as a data URI; raises MediaRefused naming `field`."""
    async with public_response(session, field, url, allow_private=allow_private) as response:
        content_type = response.content_type
        if response.status != 200 or content_type not in IMAGE_TYPES:
            raise MediaRefused(f"{field}: answered {response.status} {content_type}")
        data = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            data += chunk
            if len(data) > IMAGE_MAX_BYTES:
                raise MediaRefused(f"{field}: larger than {IMAGE_MAX_BYTES} bytes")
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


@contextlib.asynccontextmanager
async def public_response(
    session: aiohttp.ClientSession,
    field: str,
    url: str,
    *,
    allow_private: bool,
    limits: aiohttp.ClientTimeout = FETCH_TIMEOUT,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The response at `url` after its redirects, every address on the way checked; a network failure, also
    while the body is read inside the block, raises MediaRefused naming `field`."""
    target = _checked(field, url, allow_private)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            async with session.get(target, timeout=limits, allow_redirects=False) as response:
                if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                    target = _checked(
                        field, str(target.join(URL(response.headers["Location"]))), allow_private
                    )
                    continue
                yield response
                return
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise MediaRefused(f"{field}: could not be fetched ({_reason(exc)})") from None
    raise MediaRefused(f"{field}: more than {MAX_REDIRECTS} redirects")


def _checked(field: str, url: str, allow_private: bool) -> URL:
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise MediaRefused(f"{field}: only http(s) and data:image URLs are accepted")
    if not allow_private and _is_literal(parsed.host) and not is_public(parsed.host):
        raise MediaRefused(f"{field}: {parsed.host} is not a public address")
    return parsed


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _reason(exc: BaseException) -> str:
    # The resolver's refusal says which name; other errors by their type only.
    cause = exc.__cause__ if isinstance(exc.__cause__, NotPublic) else exc
    return str(cause) if isinstance(cause, NotPublic) else type(exc).__name__
