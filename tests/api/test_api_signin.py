"""Signing in to the owner console with Discord: the login redirect, the callback's session cookie, the
session as a caller, the CSRF header rule, sign-out, and the servers for the deploy picker."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from emulator.discord.server import DiscordEmulator
from tests.api.conftest import OAUTH2_CLIENT_ID, REDIRECT_URL, NewOwner, SignIn

pytestmark = pytest.mark.stack

MANAGE_GUILD = 1 << 5


async def test_login_sends_the_browser_to_discord_with_pkce(client: httpx.AsyncClient) -> None:
    login = await client.get("/auth/discord/login", params={"next": "/console/agents"})
    assert login.status_code == 302
    location = urlsplit(login.headers["Location"])
    assert location.path == "/oauth2/authorize"
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert query["response_type"] == "code" and query["client_id"] == OAUTH2_CLIENT_ID
    assert query["redirect_uri"] == REDIRECT_URL and query["scope"] == "identify guilds"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["state"]


async def test_sign_in_links_the_discord_account_to_one_owner(
    client: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    person = emulator.add_user("ada", global_name="Ada Lovelace")
    emulator.oauth2.sign_in(person.id)
    login = await client.get("/auth/discord/login", params={"next": "/console/agents"})
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(login.headers["Location"])
    callback = await client.get(consent.headers["Location"].removeprefix("http://api"))
    assert callback.status_code == 302 and callback.headers["Location"] == "/console/agents"
    cookies = callback.headers.get_list("set-cookie")
    cookie = next(cookie for cookie in cookies if cookie.startswith("deep_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/;" in cookie
    # The sign-in's own cookie is spent.
    assert any(cookie.startswith('deep_sign_in=""') for cookie in cookies)
    client.cookies.clear()
    session = {"Cookie": cookie.split(";")[0]}

    me = await client.get("/me", headers=session)
    assert me.status_code == 200, me.text
    assert me.json()["owner"]["name"] == "Ada Lovelace" and me.json()["owner"]["tier"] == "free"
    # Discord's second callback for the same state is refused: the state was used.
    replay = await client.get(consent.headers["Location"].removeprefix("http://api"))
    assert replay.status_code == 400 and replay.json()["errors"][0]["path"] == "state"


async def test_signing_in_again_finds_the_same_owner(
    client: httpx.AsyncClient, emulator: DiscordEmulator, sign_in: SignIn
) -> None:
    person = emulator.add_user("grace")
    first = await client.get("/me", headers=await sign_in(person.id))
    second = await client.get("/me", headers=await sign_in(person.id))
    assert first.json()["owner"]["owner_id"] == second.json()["owner"]["owner_id"]


async def test_a_bad_state_or_code_is_a_400_naming_the_field(client: httpx.AsyncClient) -> None:
    unknown = await client.get("/auth/discord/callback", params={"code": "c", "state": "never-issued"})
    assert unknown.status_code == 400 and unknown.json()["errors"] == [
        {"path": "state", "message": unknown.json()["errors"][0]["message"]}
    ]
    login = await client.get("/auth/discord/login")
    state = parse_qs(urlsplit(login.headers["Location"]).query)["state"][0]
    forged = await client.get("/auth/discord/callback", params={"code": "forged", "state": state})
    assert forged.status_code == 400 and forged.json()["errors"][0]["path"] == "code"


async def test_a_callback_in_another_browser_is_refused(
    client: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    """A link carrying someone's code and state, opened in another browser, signs nobody in there (login
    CSRF); the browser that started the sign-in still completes it."""
    person = emulator.add_user("alan")
    emulator.oauth2.sign_in(person.id)
    login = await client.get("/auth/discord/login")
    started = client.cookies.get("deep_sign_in")
    assert started is not None
    client.cookies.clear()
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(login.headers["Location"])
    path = consent.headers["Location"].removeprefix("http://api")
    elsewhere = await client.get(path)
    assert elsewhere.status_code == 400 and elsewhere.json()["errors"][0]["path"] == "state"
    assert (await client.get(path, headers={"Cookie": f"deep_sign_in={started}"})).status_code == 302
    client.cookies.clear()


async def test_next_never_leaves_the_site(client: httpx.AsyncClient, emulator: DiscordEmulator) -> None:
    person = emulator.add_user("mallory")
    emulator.oauth2.sign_in(person.id)
    login = await client.get("/auth/discord/login", params={"next": "//evil.example/phish"})
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(login.headers["Location"])
    callback = await client.get(consent.headers["Location"].removeprefix("http://api"))
    client.cookies.clear()
    assert callback.headers["Location"] == "/console/"


async def test_changes_with_the_cookie_need_the_console_header(
    client: httpx.AsyncClient, emulator: DiscordEmulator, sign_in: SignIn
) -> None:
    session = await sign_in(emulator.add_user("linus").id)
    without = {"Cookie": session["Cookie"]}
    refused = await client.post("/agents", json={}, headers=without)
    assert refused.status_code == 403 and "X-Deep-Console" in refused.json()["detail"]
    # With the header the request reaches the route (which then checks the body).
    assert (await client.post("/agents", json={}, headers=session)).status_code == 422
    assert (await client.get("/agents", headers=without)).status_code == 200


async def test_logout_ends_the_session(
    client: httpx.AsyncClient, emulator: DiscordEmulator, sign_in: SignIn
) -> None:
    session = await sign_in(emulator.add_user("barbara").id)
    assert (await client.post("/auth/logout", headers={"Cookie": session["Cookie"]})).status_code == 403
    out = await client.post("/auth/logout", headers=session)
    assert out.status_code == 204 and 'deep_session=""' in out.headers["set-cookie"]
    assert (await client.get("/me", headers=session)).status_code == 401


async def test_the_deploy_picker_lists_manageable_servers_and_where_a_bot_is(
    client: httpx.AsyncClient, emulator: DiscordEmulator, sign_in: SignIn
) -> None:
    person = emulator.add_user("margaret")
    with_bot = emulator.add_guild("has my bot", owner_id=person.id)
    without_bot = emulator.add_guild("no bot yet", owner_id=person.id)
    moderator = emulator.add_guild("I moderate", roles=[{"name": "mods", "permissions": str(MANAGE_GUILD)}])
    visitor = emulator.add_guild("I only visit")
    mods_role = next(role_id for role_id, role in moderator.roles.items() if role["name"] == "mods")
    emulator.add_member(moderator.id, person.id, roles=[mods_role])
    for guild in (with_bot, without_bot, visitor):
        emulator.add_member(guild.id, person.id)
    session = await sign_in(person.id)
    bot = emulator.add_bot("margarets-bot", guild_ids=[with_bot.id])
    assert (await client.post("/tokens", json={"token": bot.token}, headers=session)).status_code == 201

    listed = await client.get("/auth/discord/guilds", headers=session)
    assert listed.status_code == 200, listed.text
    assert {(g["id"], g["bot_present"]) for g in listed.json()} == {
        (with_bot.id, True),
        (without_bot.id, False),
        (moderator.id, False),
    }


async def test_an_api_key_has_no_discord_servers(client: httpx.AsyncClient, new_owner: NewOwner) -> None:
    headers = await new_owner()
    assert (await client.get("/auth/discord/guilds", headers=headers)).status_code == 403
    assert (await client.get("/auth/discord/guilds")).status_code == 401


async def test_a_session_reaches_only_its_owner(
    client: httpx.AsyncClient, emulator: DiscordEmulator, sign_in: SignIn, new_owner: NewOwner
) -> None:
    other = await new_owner(name="someone else")
    other_id = (await client.get("/me", headers=other)).json()["owner"]["owner_id"]
    session = await sign_in(emulator.add_user("eve").id)
    assert (await client.get(f"/owners/{other_id}", headers=session)).status_code == 404
    assert (await client.get("/owners", headers=session)).status_code == 403
