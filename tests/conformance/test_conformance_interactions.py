"""Interactions as Discord documents them: only registered commands are delivered; a response within 3 s,
once; deferred then edited and followed up; the token's life; autocomplete answered with choices."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conformance.conftest import SHORTEST_WAITED_TTL_S, Api, Connect, Endpoints, ready_session
from tests.conformance.driver import Driver, DriverRefused, Scene
from tests.emulator.emulator_helpers import RawGateway
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

# Discord's window for the first response to an interaction.
RESPONSE_WINDOW_S = 3.0
EPHEMERAL, LOADING = 1 << 6, 1 << 7
COMMANDS = [
    {"name": "ping", "description": "Ping"},
    {
        "name": "play",
        "description": "Play",
        "options": [
            {"type": 3, "name": "query", "description": "what", "required": True, "autocomplete": True}
        ],
    },
]


async def registered(api: Api, scene: Scene, connect: Connect) -> RawGateway:
    """The scene's bot with its commands registered in the guild, connected and ready."""
    path = f"/applications/{scene.application_id}/guilds/{scene.guild_id}/commands"
    assert (await api("PUT", path, COMMANDS)).status == 200
    gateway, _, _ = await ready_session(connect, scene)
    return gateway


async def run(driver: Driver, scene: Scene, gateway: RawGateway, name: str, **typed: Any) -> dict[str, Any]:
    """A member runs /name (or types in its focused option with `typed`): the INTERACTION_CREATE's data."""
    options = [{"type": 3, "name": k, "value": v, "focused": True} for k, v in typed.items()]
    invoked = await driver.invoke(
        scene.bot_id, scene.member_ids[0], scene.channel_id, name, options, 4 if typed else 2
    )
    frame = await gateway.dispatch("INTERACTION_CREATE")
    assert frame["d"]["id"] == invoked["id"]
    return dict(frame["d"])


def callback(interaction: dict[str, Any]) -> str:
    return f"/interactions/{interaction['id']}/{interaction['token']}/callback"


def webhook(interaction: dict[str, Any], suffix: str = "") -> str:
    return f"/webhooks/{interaction['application_id']}/{interaction['token']}{suffix}"


async def test_an_unregistered_command_delivers_nothing(
    api: Api, scene: Scene, connect: Connect, driver: Driver
) -> None:
    gateway = await registered(api, scene, connect)
    with pytest.raises(DriverRefused) as refused:
        await driver.invoke(scene.bot_id, scene.member_ids[0], scene.channel_id, "never-registered", [])
    assert refused.value.status == 404
    # The next interaction the bot sees is the registered command's: nothing came for the other.
    interaction = await run(driver, scene, gateway, "ping")
    assert interaction["type"] == 2 and interaction["data"]["name"] == "ping"
    assert interaction["member"]["user"]["id"] == scene.member_ids[0] and interaction["token"]


async def test_a_response_within_the_window_is_accepted_once(
    api: Api, scene: Scene, connect: Connect, driver: Driver
) -> None:
    interaction = await run(driver, scene, await registered(api, scene, connect), "ping")
    answer = {"type": 4, "data": {"content": "pong", "flags": EPHEMERAL}}
    assert (await api("POST", callback(interaction), answer, auth=False)).status == 204
    again = await api("POST", callback(interaction), answer, auth=False)
    assert again.status == 400 and again.body["code"] == 40060  # already acknowledged


async def test_a_response_after_three_seconds_is_unknown(
    api: Api, scene: Scene, connect: Connect, driver: Driver
) -> None:
    interaction = await run(driver, scene, await registered(api, scene, connect), "ping")
    created = time.monotonic()
    await wait_until(lambda: time.monotonic() - created > RESPONSE_WINDOW_S, "the response window to close")
    late = await api("POST", callback(interaction), {"type": 4, "data": {"content": "late"}}, auth=False)
    assert late.status == 404 and late.body["code"] == 10062  # Unknown interaction


async def test_deferred_then_edited_and_followed_up(
    api: Api, scene: Scene, connect: Connect, driver: Driver
) -> None:
    interaction = await run(driver, scene, await registered(api, scene, connect), "ping")
    assert (await api("POST", callback(interaction), {"type": 5}, auth=False)).status == 204
    thinking = await api("GET", webhook(interaction, "/messages/@original"), auth=False)
    assert thinking.status == 200 and thinking.body["flags"] & LOADING
    edited = await api("PATCH", webhook(interaction, "/messages/@original"), {"content": "done"}, auth=False)
    assert edited.status == 200 and edited.body["content"] == "done"
    followup = await api("POST", webhook(interaction), {"content": "and one more"}, auth=False)
    assert followup.status == 200 and followup.body["id"] != edited.body["id"]
    assert (await api("DELETE", webhook(interaction, "/messages/@original"), auth=False)).status == 204


async def test_a_callback_type_the_interaction_does_not_take_is_refused(
    api: Api, scene: Scene, connect: Connect, driver: Driver
) -> None:
    interaction = await run(driver, scene, await registered(api, scene, connect), "ping")
    refused = await api("POST", callback(interaction), {"type": 8, "data": {"choices": []}}, auth=False)
    assert refused.status == 400 and refused.body["errors"]["type"]["_errors"]
    assert (await api("POST", callback(interaction), {"type": 5}, auth=False)).status == 204


async def test_autocomplete_is_answered_with_at_most_25_choices(
    api: Api, scene: Scene, connect: Connect, driver: Driver
) -> None:
    gateway = await registered(api, scene, connect)
    interaction = await run(driver, scene, gateway, "play", query="lo")
    assert interaction["type"] == 4
    [focused] = interaction["data"]["options"]
    assert focused == {"type": 3, "name": "query", "value": "lo", "focused": True}
    choices = [{"name": f"lofi {n}", "value": f"lofi {n}"} for n in range(26)]
    too_many = await api("POST", callback(interaction), {"type": 8, "data": {"choices": choices}}, auth=False)
    assert too_many.status == 400 and too_many.body["errors"]["data"]["choices"]["_errors"]
    message = await api("POST", callback(interaction), {"type": 4, "data": {"content": "no"}}, auth=False)
    assert message.status == 400  # an autocomplete request takes only choices
    answer = {"type": 8, "data": {"choices": choices[:25]}}
    assert (await api("POST", callback(interaction), answer, auth=False)).status == 204


async def test_the_token_expires(
    api: Api, scene: Scene, connect: Connect, driver: Driver, endpoints: Endpoints
) -> None:
    if endpoints.token_ttl_s > SHORTEST_WAITED_TTL_S:
        pytest.skip(f"the server's tokens live {endpoints.token_ttl_s:g} s; not waited for")
    interaction = await run(driver, scene, await registered(api, scene, connect), "ping")
    created = time.monotonic()
    assert (await api("POST", callback(interaction), {"type": 5}, auth=False)).status == 204
    await wait_until(
        lambda: time.monotonic() - created > endpoints.token_ttl_s,
        "the token's life to end",
        timeout_s=endpoints.token_ttl_s + 5,
    )
    expired = await api("PATCH", webhook(interaction, "/messages/@original"), {"content": "late"}, auth=False)
    assert expired.status == 401 and expired.body["code"] == 50027  # Invalid Webhook Token
