"""The emulator's voice server: joining through op 4, the voice gateway's handshake and close codes, IP
discovery, rtpsize transport decryption, replay protection, DAVE, and the audio read back per channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from emulator_helpers import fast_config, scene
from voice_helpers import VoiceClient, joined_bot, tone_frames

from emulator.discord import DiscordEmulator, EmulatorControl
from tests.waiting import wait_until


@pytest.fixture(params=[0, 1], ids=["transport-only", "dave"])
async def voice_emu(request: pytest.FixtureRequest) -> AsyncIterator[DiscordEmulator]:
    """An emulator offering DAVE version 0 (transport encryption only) or 1."""
    async with DiscordEmulator(fast_config(voice_dave_protocol_version=request.param)) as emulator:
        yield emulator


@pytest.fixture
async def dave_emu() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(fast_config()) as emulator:
        yield emulator


def recording_of(emu: DiscordEmulator, channel_id: str) -> dict:
    recordings = emu.voice.received(channel_id=channel_id)["recordings"]
    assert len(recordings) == 1
    return recordings[0]


async def test_a_tone_sent_over_encrypted_udp_reads_back_as_that_tone(
    voice_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(voice_emu)
    gw, grant = await joined_bot(voice_emu, http, s)
    assert grant.endpoint == voice_emu.voice.endpoint
    client = VoiceClient(http, grant)
    await client.connect()
    await client.send(5, {"speaking": 1, "delay": 0, "ssrc": client.ssrc})
    frames = tone_frames(440.0, 1.0)
    for opus in frames:
        client.send_packet(client.packet(opus))
    await client.send(5, {"speaking": 0, "delay": 0, "ssrc": client.ssrc})
    await wait_until(
        lambda: recording_of(voice_emu, s.voice.id)["packets"] == len(frames), "every tone packet to arrive"
    )
    await wait_until(lambda: recording_of(voice_emu, s.voice.id)["speaking"] == [1, 0], "both speaking ops")

    async with EmulatorControl(voice_emu.base_url) as control:
        received = await control.voice_received(guild_id=s.guild.id, channel_id=s.voice.id)
    (got,) = received["recordings"]
    assert (got["guild_id"], got["channel_id"], got["user_id"]) == (s.guild.id, s.voice.id, s.bot.id)
    assert got["ssrcs"] == [client.ssrc]
    assert got["duration_s"] == pytest.approx(1.0)
    assert got["timestamp_duration_s"] == pytest.approx(1.0)
    assert got["dominant_hz"] == pytest.approx(440.0, abs=3.0)
    assert got["rms"] > 0.2
    assert got["e2ee_frames"] == (len(frames) if voice_emu.config.voice_dave_protocol_version else 0)
    assert got["rejected"] == {} and received["rejected"] == {}
    await client.close()
    await gw.close()


async def test_wrong_key_and_replayed_nonce_are_rejected_and_counted(
    voice_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(voice_emu)
    gw, grant = await joined_bot(voice_emu, http, s)
    client = VoiceClient(http, grant)
    await client.connect()
    (opus,) = tone_frames(220.0, 0.02)
    client.send_packet(client.packet(opus, key=bytes(32)))
    genuine = client.packet(opus)
    client.send_packet(genuine)
    client.send_packet(genuine)
    tampered = bytearray(client.packet(opus))
    tampered[3] ^= 1  # the sequence number is authenticated data
    client.send_packet(bytes(tampered))
    client.send_packet(b"\x00" * 10)
    await wait_until(
        lambda: recording_of(voice_emu, s.voice.id)["rejected"] == {"decrypt": 2, "replay": 1},
        "the forged, replayed and tampered packets to be counted",
    )
    await wait_until(lambda: voice_emu.voice.rejected["malformed"] == 1, "the malformed packet")
    assert recording_of(voice_emu, s.voice.id)["packets"] == 1
    await client.close()
    await gw.close()


async def test_identify_with_a_wrong_token_is_closed_4004(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(dave_emu)
    gw, grant = await joined_bot(dave_emu, http, s)
    client = VoiceClient(http, grant)
    hello = await client.open()
    assert (
        hello["op"] == 8 and hello["d"]["heartbeat_interval"] == dave_emu.config.voice_heartbeat_interval_ms
    )
    await client.identify(token="not-the-token")
    assert await client.close_code() == 4004
    await gw.close()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"session_id": "another-gateway-session"}, 4006),
        ({"max_dave_protocol_version": 0}, 4017),
        ({"server_id": 123}, 4002),
    ],
    ids=["unknown-session", "dave-required", "malformed"],
)
async def test_identify_that_does_not_match_the_grant_is_closed(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession, change: dict, code: int
) -> None:
    s = scene(dave_emu)
    gw, grant = await joined_bot(dave_emu, http, s)
    client = VoiceClient(http, grant)
    await client.open()
    await client.identify(**change)
    assert await client.close_code() == code
    await gw.close()


async def test_ops_before_identify_and_unknown_modes_are_closed(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(dave_emu)
    gw, grant = await joined_bot(dave_emu, http, s)
    early = VoiceClient(http, grant)
    await early.open()
    await early.send(5, {"speaking": 1, "delay": 0, "ssrc": 1})
    assert await early.close_code() == 4003

    client = VoiceClient(http, grant)
    await client.open()
    await client.identify()
    await client.message(2)
    await client.send(1, {"protocol": "udp", "data": {"address": "127.0.0.1", "port": 1, "mode": "xsalsa20"}})
    assert await client.close_code() == 4016
    await gw.close()


async def test_heartbeat_is_acked_with_its_nonce(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(dave_emu)
    gw, grant = await joined_bot(dave_emu, http, s)
    client = VoiceClient(http, grant)
    await client.open()
    await client.send(3, {"t": 1234, "seq_ack": -1})
    assert (await client.message(6))["d"] == {"t": 1234}
    await client.close()
    await gw.close()


async def test_a_dropped_voice_connection_resumes_with_its_key_and_replay(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(dave_emu)
    gw, grant = await joined_bot(dave_emu, http, s)
    client = VoiceClient(http, grant)
    await client.connect()
    acked = client.seq_ack
    async with EmulatorControl(dave_emu.base_url) as control:
        assert await control.drop_voice(s.bot.id) == 1
    assert await client.close_code() == 4015

    assert client.ws is not None
    client.ws = await http.ws_connect(f"ws://{grant.endpoint}/?v=8")
    await client.message(8)
    g = client.grant
    await client.send(
        7, {"server_id": g.guild_id, "session_id": g.session_id, "token": g.token, "seq_ack": 1}
    )
    replayed = []
    while not isinstance(message := await client.receive(), dict) or message["op"] != 9:
        assert message is not None, "closed before RESUMED"
        replayed.append(client.seq_ack)
    assert replayed == list(range(2, acked + 1)), "everything after seq_ack 1 comes again, then RESUMED"
    for opus in tone_frames(330.0, 0.2):
        client.send_packet(client.packet(opus))
    await wait_until(lambda: recording_of(dave_emu, s.voice.id)["packets"] == 10, "packets after the resume")
    await client.close()
    await gw.close()


async def test_leaving_voice_closes_the_voice_connection_4014_and_it_cannot_resume(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(dave_emu)
    gw, grant = await joined_bot(dave_emu, http, s)
    client = VoiceClient(http, grant)
    await client.connect()
    await gw.send(4, {"guild_id": s.guild.id, "channel_id": None, "self_mute": False, "self_deaf": False})
    assert await client.close_code() == 4014

    again = VoiceClient(http, grant)
    await again.open()
    g = grant
    await again.send(7, {"server_id": g.guild_id, "session_id": g.session_id, "token": g.token, "seq_ack": 0})
    assert await again.close_code() == 4006
    await gw.close()


async def test_clearing_forgets_what_was_received(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(dave_emu)
    gw, grant = await joined_bot(dave_emu, http, s)
    client = VoiceClient(http, grant)
    await client.connect()
    for opus in tone_frames(440.0, 0.1):
        client.send_packet(client.packet(opus))
    await wait_until(lambda: recording_of(dave_emu, s.voice.id)["packets"] == 5, "the first packets")
    async with EmulatorControl(dave_emu.base_url) as control:
        await control.clear_voice_received()
    assert recording_of(dave_emu, s.voice.id)["packets"] == 0
    for opus in tone_frames(440.0, 0.04):
        client.send_packet(client.packet(opus))
    await wait_until(lambda: recording_of(dave_emu, s.voice.id)["packets"] == 2, "packets after clearing")
    await client.close()
    await gw.close()
