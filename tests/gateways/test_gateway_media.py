"""Persona images: fetched into data URIs for Discord, only from public addresses unless allowed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from emulator.http import LocalHttpServer
from gateways.media import IMAGE_MAX_BYTES, MediaRefused, image_data_uri, is_public, media_session

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


class ImageHost(LocalHttpServer):
    """An image host on 127.0.0.1: a PNG, redirects to it, a page that is not an image, one too large."""

    def routes(self, app: web.Application) -> None:
        async def png(_: web.Request) -> web.Response:
            return web.Response(body=PNG, content_type="image/png")

        async def redirect(request: web.Request) -> web.Response:
            hops = int(request.match_info["hops"])
            raise web.HTTPFound("/luna.png" if hops == 0 else f"/redirect/{hops - 1}")

        async def page(_: web.Request) -> web.Response:
            return web.Response(text="<html>not an image</html>", content_type="text/html")

        async def huge(_: web.Request) -> web.Response:
            return web.Response(body=b"\0" * (IMAGE_MAX_BYTES + 1), content_type="image/png")

        app.router.add_get("/luna.png", png)
        app.router.add_get("/redirect/{hops}", redirect)
        app.router.add_get("/page", page)
        app.router.add_get("/huge.png", huge)


@pytest.fixture(scope="module")
async def images() -> AsyncIterator[str]:
    async with ImageHost() as host:
        yield host.root_url


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.10", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fd00::1", False),
        ("224.0.0.1", False),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_only_global_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.stack
async def test_private_addresses_are_refused_by_literal_and_by_name(images: str) -> None:
    port = images.rsplit(":", 1)[1]
    async with media_session(allow_private=False) as session:
        for url, reason in (
            (f"{images}/luna.png", "avatar_url: 127.0.0.1 is not a public address"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "avatar_url: 169.254.169.254 is not a public address",
            ),
            (f"http://[::1]:{port}/luna.png", "avatar_url: ::1 is not a public address"),
            # A name is checked where it is resolved, in the connector.
            (f"http://localhost:{port}/luna.png", "avatar_url: could not be fetched (localhost is not a"),
            ("ftp://example.com/luna.png", "avatar_url: only http(s) and data:image URLs are accepted"),
        ):
            with pytest.raises(MediaRefused) as refused:
                await image_data_uri(session, "avatar_url", url, allow_private=False)
            assert str(refused.value).startswith(reason)


@pytest.mark.stack
async def test_allowed_private_host_images_become_data_uris(images: str) -> None:
    async with media_session(allow_private=True) as session:
        expected = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
        assert (
            await image_data_uri(session, "avatar_url", f"{images}/luna.png", allow_private=True) == expected
        )
        # Redirects are followed, each hop checked, at most three.
        redirected = await image_data_uri(session, "banner_url", f"{images}/redirect/2", allow_private=True)
        assert redirected == expected
        for path, reason in (
            ("/redirect/3", "banner_url: more than 3 redirects"),
            ("/page", "banner_url: answered 200 text/html"),
            ("/huge.png", f"banner_url: larger than {IMAGE_MAX_BYTES} bytes"),
        ):
            with pytest.raises(MediaRefused) as refused:
                await image_data_uri(session, "banner_url", f"{images}{path}", allow_private=True)
            assert str(refused.value) == reason
