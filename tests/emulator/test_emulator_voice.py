"""The emulator's voice server: joining through op 4, the voice gateway's handshake and close codes, IP
discovery, rtpsize transport decryption, replay protection, DAVE, and the audio read back per channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
from emulator_helpers import fast_config, scene
from voice_helpers import VoiceClient, connected_bot, joined_bot, tone_frames

from emulator.discord import DiscordEmulator, EmulatorControl, EmulatorError
from tests.waiting import wait_until

pytestmark = pytest.mark.stack


@pytest.fixture(params=[0, 1], ids=["transport-only", "dave"])
async def voice_emu(request: pytest.FixtureRequest) -> AsyncIterator[DiscordEmulator]:
    """An emulator offering DAVE version 0 (transport encryption only) or 1."""
    async with DiscordEmulator(fast_config(voice_dave_protocol_version=request.param)) as emulator:
        yield emulator


@pytest.fixture
async def dave_emu() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(fast_config()) as emulator:
        yield emulator


def recording_of(emu: DiscordEmulator, channel_id: str) -> dict[str, Any]:
    recordings: list[dict[str, Any]] = emu.voice.received(channel_id=channel_id)["recordings"]
    assert len(recordings) == 1
    return recordings[0]


async def packets_kept(emu: DiscordEmulator, channel_id: str, count: int, what: str) -> dict[str, Any]:
    return await wait_until(
        lambda: (r := recording_of(emu, channel_id))["packets"] == count and r, f"{count} packets: {what}"
    )


async def test_a_tone_sent_over_encrypted_udp_reads_back_as_that_tone(
    voice_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s, gw, client = await connected_bot(voice_emu, http)
    assert client.endpoint == voice_emu.voice.endpoint
    await client.send(5, {"speaking": 1, "delay": 0, "ssrc": client.ssrc})
    frames = tone_frames(440.0, 1.0)
    client.send_opus(frames)
    await client.send(5, {"speaking": 0, "delay": 0, "ssrc": client.ssrc})
    await packets_kept(voice_emu, s.voice.id, len(frames), "the whole tone")
    await wait_until(lambda: recording_of(voice_emu, s.voice.id)["speaking"] == [1, 0], "both speaking ops")

    async with EmulatorControl(voice_emu.base_url) as control:
        received = await control.voice_received(guild_id=s.guild.id, channel_id=s.voice.id)
        pcm = np.frombuffer(await control.voice_pcm(s.guild.id, s.voice.id, s.bot.id), dtype="<i2")
        with pytest.raises(EmulatorError) as nothing:
            await control.voice_pcm(s.guild.id, s.voice.id, s.alice.id)
    assert nothing.value.status == 404
    assert pcm.shape == (48_000 * 2,) and np.abs(pcm).max() > 10_000
    (got,) = received["recordings"]
    assert (got["guild_id"], got["channel_id"], got["user_id"]) == (s.guild.id, s.voice.id, s.bot.id)
    assert got["ssrcs"] == [client.ssrc]
    assert got["duration_s"] == pytest.approx(1.0)
    assert got["timestamp_duration_s"] == pytest.approx(1.0)
    assert got["dominant_hz"] == pytest.approx(440.0, abs=3.0)
    assert got["rms"] > 0.2
    assert got["lost_packets"] == 0 and got["undecodable_frames"] == 0
    assert got["e2ee_frames"] == (len(frames) if voice_emu.config.voice_dave_protocol_version else 0)
    assert got["rejected"] == {} and received["rejected"] == {}
    await client.close()
    await gw.close()


async def test_wrong_key_and_replayed_nonce_are_rejected_and_counted(
    voice_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s, gw, client = await connected_bot(voice_emu, http)
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
    gw, client = await joined_bot(dave_emu, http, scene(dave_emu))
    hello = await client.open()
    assert hello["op"] == 8
    assert hello["d"]["heartbeat_interval"] == dave_emu.config.voice_heartbeat_interval_ms
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
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession, change: dict[str, Any], code: int
) -> None:
    gw, client = await joined_bot(dave_emu, http, scene(dave_emu))
    await client.open()
    await client.identify(**change)
    assert await client.close_code() == code
    await gw.close()


async def test_ops_before_identify_and_unknown_modes_are_closed(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s = scene(dave_emu)
    gw, early = await joined_bot(dave_emu, http, s)
    await early.open()
    await early.send(5, {"speaking": 1, "delay": 0, "ssrc": 1})
    assert await early.close_code() == 4003

    client = VoiceClient(http, early.grant, early.endpoint)
    await client.open()
    await client.identify()
    await client.message(2)
    await client.send(1, {"protocol": "udp", "data": {"address": "127.0.0.1", "port": 1, "mode": "xsalsa20"}})
    assert await client.close_code() == 4016
    await gw.close()


async def test_heartbeat_is_acked_with_its_nonce(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    gw, client = await joined_bot(dave_emu, http, scene(dave_emu))
    await client.open()
    await client.send(3, {"t": 1234, "seq_ack": -1})
    assert (await client.message(6))["d"] == {"t": 1234}
    await client.close()
    await gw.close()


async def test_a_dropped_voice_connection_resumes_with_its_key_and_replay(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s, gw, client = await connected_bot(dave_emu, http)
    acked = client.seq_ack
    async with EmulatorControl(dave_emu.base_url) as control:
        assert await control.drop_voice(s.bot.id) == 1
    assert await client.close_code() == 4015

    await client.resume(seq_ack=1)
    replayed = []
    while not isinstance(message := await client.receive(), dict) or message["op"] != 9:
        assert message is not None, "closed before RESUMED"
        replayed.append(client.seq_ack)
    assert replayed == list(range(2, acked + 1)), "everything after seq_ack 1 comes again, then RESUMED"
    client.send_opus(tone_frames(330.0, 0.2))
    await packets_kept(dave_emu, s.voice.id, 10, "sent after the resume")
    await client.close()
    await gw.close()


async def test_leaving_voice_closes_the_voice_connection_4014_and_it_cannot_resume(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s, gw, client = await connected_bot(dave_emu, http)
    await gw.send(4, {"guild_id": s.guild.id, "channel_id": None, "self_mute": False, "self_deaf": False})
    assert await client.close_code() == 4014
    await client.resume(seq_ack=0)
    assert await client.close_code() == 4006
    await gw.close()


async def test_clearing_forgets_what_was_received(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s, gw, client = await connected_bot(dave_emu, http)
    client.send_opus(tone_frames(440.0, 0.1))
    await packets_kept(dave_emu, s.voice.id, 5, "before clearing")
    async with EmulatorControl(dave_emu.base_url) as control:
        await control.clear_voice_received()
    assert recording_of(dave_emu, s.voice.id)["packets"] == 0
    client.send_opus(tone_frames(440.0, 0.04))
    await packets_kept(dave_emu, s.voice.id, 2, "after clearing")
    await client.close()
    await gw.close()


async def test_a_new_gateway_session_rejoins_and_its_audio_continues_the_recording(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s, first_gw, first = await connected_bot(dave_emu, http)
    first.send_opus(tone_frames(440.0, 0.1))
    await packets_kept(dave_emu, s.voice.id, 5, "from the first runner")

    # Another runner takes the bot over: a new gateway session joins the same channel again.
    second_gw, second = await joined_bot(dave_emu, http, s)
    assert second.grant.session_id != first.grant.session_id and second.grant.token != first.grant.token
    await second.connect()
    assert await first.close_code() == 4006
    first.send_opus(tone_frames(440.0, 0.02))
    second.send_opus(tone_frames(440.0, 0.1))
    await packets_kept(dave_emu, s.voice.id, 10, "from the second runner")
    await wait_until(lambda: dave_emu.voice.rejected["unknown_ssrc"] == 1, "the old SSRC refused")
    assert recording_of(dave_emu, s.voice.id)["ssrcs"] == [first.ssrc, second.ssrc]
    for client in (first, second):
        await client.close()
    for gw in (first_gw, second_gw):
        await gw.close()


async def test_with_dave_a_frame_without_the_e2ee_layer_is_refused(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession
) -> None:
    s, gw, client = await connected_bot(dave_emu, http)
    (opus,) = tone_frames(440.0, 0.02)
    dave, client.dave = client.dave, None
    client.send_opus([opus, b"\xf8\xff\xfe"])  # Opus silence stays clear under DAVE
    client.dave = dave
    client.send_opus([opus])
    got = await packets_kept(dave_emu, s.voice.id, 2, "the silence and the E2EE frame")
    assert got["rejected"] == {"unencrypted_after_transition": 1} and got["e2ee_frames"] == 1
    await client.close()
    await gw.close()


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ([(99, {})], 4001),
        ([(0, None), (0, None)], 4005),
        ([(26, b"key package")], 4003),
        ([(0, None), (1, {"protocol": "webrtc", "data": {}})], 4012),
    ],
    ids=["unknown-opcode", "identify-twice", "binary-before-identify", "not-udp"],
)
async def test_protocol_errors_close_with_discords_codes(
    dave_emu: DiscordEmulator, http: aiohttp.ClientSession, steps: list[tuple[int, Any]], code: int
) -> None:
    gw, client = await joined_bot(dave_emu, http, scene(dave_emu))
    await client.open()
    for op, data in steps:
        if isinstance(data, bytes):
            await client.send_binary(op, data)
        elif op == 0:
            await client.identify()
        else:
            await client.send(op, data)
    assert await client.close_code() == code
    await gw.close()


async def test_a_silent_connection_is_closed_4009(http: aiohttp.ClientSession) -> None:
    config = fast_config(voice_heartbeat_interval_ms=50, heartbeat_grace_s=0.0)
    async with DiscordEmulator(config) as emu:
        gw, client = await joined_bot(emu, http, scene(emu))
        await client.open()
        assert await client.close_code() == 4009
        await gw.close()
