"""The emulator's OAuth2: consent, the code exchange with PKCE, refresh, and the Bearer user routes, with
the errors Discord answers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from emulator.discord import DiscordEmulator
from emulator.discord.oauth2 import s256

CLIENT_ID = "1400000000000000042"
SECRET = "test-secret"
REDIRECT = "http://127.0.0.1:1/callback"
MANAGE_GUILD = 1 << 5


@pytest.fixture
async def discord() -> AsyncIterator[DiscordEmulator]:
    emulator = DiscordEmulator()
    await emulator.start()
    emulator.register_oauth2_client(CLIENT_ID, SECRET, [REDIRECT])
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http(discord: DiscordEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=discord.base_url) as client:
        yield client


def authorize_query(challenge: str, **changes: str) -> dict[str, str]:
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "identify guilds",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return query | changes


async def code_for(http: httpx.AsyncClient, user_id: str, verifier: str) -> str:
    """Picks `user_id` on the consent page, as a person in a browser does; the code from the redirect."""
    assert (await http.put("/_control/oauth2/user", json={"user_id": None})).status_code == 204
    page = await http.get("/oauth2/authorize", params=authorize_query(s256(verifier)))
    assert page.status_code == 200 and "Sign in as" in page.text
    answer = await http.post("/oauth2/authorize", data=authorize_query(s256(verifier)) | {"user_id": user_id})
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    params = parse_qs(location.query)
    assert params["state"] == ["s1"]
    return params["code"][0]


def exchange(code: str, verifier: str, **changes: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
    }
    return form | changes


async def test_sign_in_reads_the_user_and_the_guilds_they_manage(
    discord: DiscordEmulator, http: httpx.AsyncClient
) -> None:
    person = discord.add_user("ada", global_name="Ada")
    owned = discord.add_guild("Ada's server", owner_id=person.id)
    joined = discord.add_guild("elsewhere")
    discord.add_member(owned.id, person.id)
    discord.add_member(joined.id, person.id)
    verifier = secrets.token_urlsafe(40)
    code = await code_for(http, person.id, verifier)

    tokens = (await http.post("/api/oauth2/token", data=exchange(code, verifier))).json()
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "identify guilds"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = (await http.get("/api/users/@me", headers=bearer)).json()
    assert (me["id"], me["global_name"]) == (person.id, "Ada")
    guilds = {
        guild["id"]: guild for guild in (await http.get("/api/users/@me/guilds", headers=bearer)).json()
    }
    assert set(guilds) == {owned.id, joined.id}
    assert guilds[owned.id]["owner"] and int(guilds[owned.id]["permissions"]) & MANAGE_GUILD
    assert not int(guilds[joined.id]["permissions"]) & MANAGE_GUILD

    refreshed = await http.post(
        "/api/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(CLIENT_ID, SECRET),
    )
    assert refreshed.status_code == 200
    again = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert (await http.get("/api/users/@me", headers=again)).json()["id"] == person.id
    # A refresh token is single-use: it was rotated.
    reused = await http.post(
        "/api/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(CLIENT_ID, SECRET),
    )
    assert reused.json()["error"] == "invalid_grant"


async def test_a_signed_in_user_is_approved_at_once(
    discord: DiscordEmulator, http: httpx.AsyncClient
) -> None:
    person = discord.add_user("grace")
    assert (await http.put("/_control/oauth2/user", json={"user_id": person.id})).status_code == 204
    answer = await http.get("/oauth2/authorize", params=authorize_query(s256("v" * 43)))
    assert answer.status_code == 302 and "code=" in answer.headers["Location"]


async def test_codes_are_checked_as_discord_checks_them(
    discord: DiscordEmulator, http: httpx.AsyncClient
) -> None:
    person = discord.add_user("linus")
    verifier = secrets.token_urlsafe(40)

    async def error_of(form: dict[str, str]) -> tuple[int, str]:
        answer = await http.post("/api/oauth2/token", data=form)
        return answer.status_code, answer.json()["error"]

    code = await code_for(http, person.id, verifier)
    assert await error_of(exchange(code, "wrong-verifier" * 4)) == (400, "invalid_grant")
    # The failed attempt used the code up.
    assert await error_of(exchange(code, verifier)) == (400, "invalid_grant")
    code = await code_for(http, person.id, verifier)
    assert await error_of(exchange(code, verifier, redirect_uri="http://elsewhere/cb")) == (
        400,
        "invalid_grant",
    )
    code = await code_for(http, person.id, verifier)
    assert await error_of(exchange(code, verifier, client_secret="nope")) == (401, "invalid_client")
    assert await error_of(exchange(code, verifier, grant_type="password")) == (400, "unsupported_grant_type")
    assert (await http.post("/api/oauth2/token", data=exchange(code, verifier))).status_code == 200

    unknown = await http.get("/oauth2/authorize", params=authorize_query("c", client_id="1"))
    assert unknown.json()["error"] == "invalid_client"
    foreign = await http.get("/oauth2/authorize", params=authorize_query("c", redirect_uri="http://evil/cb"))
    assert foreign.json()["error"] == "invalid_request"
    plain = await http.get("/oauth2/authorize", params=authorize_query("c", code_challenge_method="plain"))
    assert plain.json()["error"] == "invalid_request"
    assert (await http.get("/api/users/@me", headers={"Authorization": "Bearer nope"})).status_code == 401
    nobody = await http.post("/oauth2/authorize", data=authorize_query("c") | {"user_id": "404"})
    assert nobody.status_code == 400 and nobody.json()["error"] == "invalid_request"


async def test_the_guilds_route_needs_the_guilds_scope(
    discord: DiscordEmulator, http: httpx.AsyncClient
) -> None:
    person = discord.add_user("barbara")
    verifier = secrets.token_urlsafe(40)
    query = authorize_query(s256(verifier), scope="identify")
    answer = await http.post("/oauth2/authorize", data=query | {"user_id": person.id})
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    tokens = (await http.post("/api/oauth2/token", data=exchange(code, verifier))).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await http.get("/api/users/@me/guilds", headers=bearer)).status_code == 403
