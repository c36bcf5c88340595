"""The gateway as Discord documents it: HELLO and IDENTIFY, sequence numbers from 1, a session per IDENTIFY,
heartbeats, close codes, RESUME with the replay of missed dispatches, INVALID_SESSION (resumable or not),
voice state and presence updates."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conformance.conftest import Connect, Endpoints, identify, ready_session
from tests.conformance.driver import Driver, Scene
from tests.emulator.emulator_helpers import RawGateway

pytestmark = pytest.mark.stack

OP_HEARTBEAT, OP_PRESENCE, OP_VOICE_STATE, OP_RESUME = 1, 3, 4, 6
OP_INVALID_SESSION, OP_HEARTBEAT_ACK = 9, 11
# A close the client sends when it means to RESUME (any code but 1000/1001 keeps the session).
CLIENT_RESUMING_CLOSE = 4000


async def test_hello_names_the_heartbeat_interval(http: aiohttp.ClientSession, endpoints: Endpoints) -> None:
    gateway = RawGateway(http, endpoints.gateway_url.rstrip("/") + "/", compress=False)
    hello = await gateway.connect()
    await gateway.close()
    assert isinstance(hello["d"]["heartbeat_interval"], int) and hello["d"]["heartbeat_interval"] > 0


async def test_identify_gets_ready_then_the_guilds_numbered_from_one(connect: Connect, scene: Scene) -> None:
    gateway = await connect()
    ready = await identify(gateway, scene.bot_token)
    assert ready["op"] == 0 and ready["s"] == 1
    data = ready["d"]
    assert data["v"] == 10 and data["user"]["id"] == scene.bot_id
    assert data["session_id"] and data["resume_gateway_url"].startswith(("ws://", "wss://"))
    assert {g["id"] for g in data["guilds"]} == {scene.guild_id}
    guild_create = await gateway.dispatch("GUILD_CREATE")
    assert guild_create["s"] == 2 and guild_create["d"]["id"] == scene.guild_id


async def test_every_identify_starts_a_new_session(connect: Connect, scene: Scene) -> None:
    first, ready, _ = await ready_session(connect, scene)
    await first.close()
    second = await connect()
    again = await identify(second, scene.bot_token)
    assert again["d"]["session_id"] != ready["d"]["session_id"]
    assert again["s"] == 1


async def heartbeat_acknowledged(gateway: RawGateway, seq: int | None) -> None:
    await gateway.send(OP_HEARTBEAT, seq)
    while (frame := await gateway.frame())["op"] != OP_HEARTBEAT_ACK:
        assert frame["op"] == 0, frame  # only dispatches may come before the ACK


async def test_a_heartbeat_is_acknowledged_before_and_after_identify(connect: Connect, scene: Scene) -> None:
    gateway = await connect()
    await heartbeat_acknowledged(gateway, None)  # no dispatch yet: the sequence is null
    await identify(gateway, scene.bot_token)
    seq = int((await gateway.dispatch("GUILD_CREATE"))["s"])
    await heartbeat_acknowledged(gateway, seq)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"op": 99, "d": None}, 4001),  # unknown opcode
        ({"op": OP_PRESENCE, "d": {"status": "online", "activities": [], "since": None, "afk": False}}, 4003),
        ({"op": 2, "d": {"token": "not-a-token", "intents": 0, "properties": {}}}, 4004),
    ],
    ids=["unknown-opcode", "not-authenticated", "authentication-failed"],
)
async def test_close_codes(connect: Connect, payload: dict[str, object], code: int) -> None:
    gateway = await connect()
    assert gateway.ws is not None
    await gateway.ws.send_json(payload)
    assert await gateway.close_code() == code


async def test_a_second_identify_on_one_connection_closes_it_4005(connect: Connect, scene: Scene) -> None:
    gateway, _, _ = await ready_session(connect, scene)
    await gateway.send(2, {"token": scene.bot_token, "intents": 0, "properties": {}})
    assert await gateway.close_code() == 4005


async def resume(connect: Connect, scene: Scene, ready: dict[str, Any], seq: int) -> RawGateway:
    """RESUME the READY's session after `seq` on a new connection to its resume_gateway_url."""
    resumed = await connect(ready["d"]["resume_gateway_url"])
    session_id = ready["d"]["session_id"]
    await resumed.send(OP_RESUME, {"token": scene.bot_token, "session_id": session_id, "seq": seq})
    return resumed


async def close_to_resume(gateway: RawGateway) -> None:
    assert gateway.ws is not None
    await gateway.ws.close(code=CLIENT_RESUMING_CLOSE)


async def test_resume_replays_what_was_missed_then_says_resumed(
    connect: Connect, scene: Scene, driver: Driver
) -> None:
    gateway, ready, seq = await ready_session(connect, scene)
    await close_to_resume(gateway)
    missed = await driver.post_message(scene.member_ids[0], scene.channel_id, "while you were away")
    resumed = await resume(connect, scene, ready, seq)
    replayed = await resumed.dispatch("MESSAGE_CREATE")
    assert replayed["d"]["id"] == missed["id"] and replayed["s"] == seq + 1
    after = await resumed.frame()
    assert after["t"] == "RESUMED", after
    # The session goes on where it was: the next dispatch continues the numbering.
    await driver.post_message(scene.member_ids[0], scene.channel_id, "welcome back")
    assert (await resumed.dispatch("MESSAGE_CREATE"))["s"] > replayed["s"]


async def test_resuming_an_unknown_session_is_refused_for_good(connect: Connect, scene: Scene) -> None:
    gateway = await connect()
    await gateway.send(OP_RESUME, {"token": scene.bot_token, "session_id": "no-such-session", "seq": 1})
    frame = await gateway.frame()
    assert frame["op"] == OP_INVALID_SESSION and frame["d"] is False


@pytest.mark.parametrize("resumable", [True, False], ids=["resumable", "not-resumable"])
async def test_an_invalid_session_is_resumed_or_identified_again_as_its_d_says(
    connect: Connect, scene: Scene, driver: Driver, resumable: bool
) -> None:
    gateway, ready, seq = await ready_session(connect, scene)
    await driver.invalidate_sessions(scene.bot_id, resumable=resumable)
    frame = await gateway.frame()
    assert frame["op"] == OP_INVALID_SESSION and frame["d"] is resumable
    await close_to_resume(gateway)
    resumed = await resume(connect, scene, ready, seq)
    if resumable:
        assert (await resumed.dispatch("RESUMED"))["op"] == 0
        return
    refused = await resumed.frame()
    assert refused["op"] == OP_INVALID_SESSION and refused["d"] is False
    fresh = await connect()
    assert (await identify(fresh, scene.bot_token))["d"]["session_id"] != ready["d"]["session_id"]


async def test_voice_state_update_joins_and_leaves(connect: Connect, scene: Scene, driver: Driver) -> None:
    gateway, _, _ = await ready_session(connect, scene)
    join = {
        "guild_id": scene.guild_id,
        "channel_id": scene.voice_channel_id,
        "self_mute": False,
        "self_deaf": True,
    }
    await gateway.send(OP_VOICE_STATE, join)
    state = await gateway.dispatch("VOICE_STATE_UPDATE")
    assert state["d"]["user_id"] == scene.bot_id and state["d"]["channel_id"] == scene.voice_channel_id
    assert state["d"]["session_id"] and state["d"]["self_deaf"] is True
    server = await gateway.dispatch("VOICE_SERVER_UPDATE")
    assert server["d"]["guild_id"] == scene.guild_id and server["d"]["token"] and server["d"]["endpoint"]
    # A member joining the channel is seen by the bot.
    await driver.join_voice(scene.guild_id, scene.member_ids[0], scene.voice_channel_id)
    member = await gateway.dispatch("VOICE_STATE_UPDATE")
    assert member["d"]["user_id"] == scene.member_ids[0]
    await gateway.send(OP_VOICE_STATE, {**join, "channel_id": None})
    left = await gateway.dispatch("VOICE_STATE_UPDATE")
    assert left["d"]["user_id"] == scene.bot_id and left["d"]["channel_id"] is None


async def test_a_presence_update_is_accepted(connect: Connect, scene: Scene) -> None:
    gateway, _, seq = await ready_session(connect, scene)
    activity = {"name": "conformance", "type": 0}
    await gateway.send(OP_PRESENCE, {"status": "idle", "activities": [activity], "since": None, "afk": False})
    # No answer is defined; the connection stays up and goes on acknowledging heartbeats.
    await heartbeat_acknowledged(gateway, seq)
