"""The voice server's pure parts: UDP packet framing and rtpsize decryption, the replay window, MLS
encoding, the server's DAVE member, and the audio measurements."""

from __future__ import annotations

import math
import struct

import davey
import numpy as np
import pytest
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

from emulator.discord import mls, voice_rtp
from emulator.discord.dave import LISTENER_USER_ID, OPUS_SILENCE, DaveError, DaveLink
from emulator.discord.voice_audio import ReceivedFrame, dominant_frequency, jitter_ms, lost_packets
from emulator.discord.voice_rtp import PacketRejected, ReplayWindow, accept_counter

KEY = bytes(range(32))


def sealed(header: bytes, plaintext: bytes, counter: int, key: bytes = KEY) -> bytes:
    nonce = struct.pack(">I", counter)
    return (
        header + crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, header, nonce + bytes(20), key) + nonce
    )


def test_ip_discovery_answer_carries_the_address_and_port() -> None:
    request = struct.pack(">HHI66x", 1, 70, 1234)
    assert voice_rtp.is_discovery_request(request) and voice_rtp.discovery_ssrc(request) == 1234
    answer = voice_rtp.discovery_response(1234, "127.0.0.1", 50000)
    assert len(answer) == 74 and struct.unpack_from(">HHI", answer) == (2, 70, 1234)
    assert answer[8:17] == b"127.0.0.1" and answer[17] == 0
    assert struct.unpack_from(">H", answer, 72)[0] == 50000
    assert not voice_rtp.is_discovery_request(answer)


def test_rtpsize_keeps_the_extension_header_clear_and_strips_its_encrypted_body() -> None:
    # Version 2 with the extension bit; profile 0xBEDE, one 32-bit word of extension body.
    header = struct.pack(">BBHII", 0x90, 0x78, 7, 960, 42) + struct.pack(">HH", 0xBEDE, 1)
    packet = voice_rtp.parse_rtp(sealed(header, b"\x10\x00\x00\x00" + b"opus", counter=9))
    assert (packet.sequence, packet.timestamp, packet.ssrc, packet.counter) == (7, 960, 42, 9)
    assert packet.authenticated == header
    assert voice_rtp.open_rtpsize(KEY, packet) == b"opus"


def test_a_wrong_key_or_an_altered_header_fails_decryption() -> None:
    header = struct.pack(">BBHII", 0x80, 0x78, 1, 0, 42)
    raw = sealed(header, b"opus", counter=0)
    with pytest.raises(PacketRejected, match="decrypt"):
        voice_rtp.open_rtpsize(bytes(32), voice_rtp.parse_rtp(raw))
    altered = bytearray(raw)
    altered[8] ^= 1  # the SSRC is associated data
    with pytest.raises(PacketRejected, match="decrypt"):
        voice_rtp.open_rtpsize(KEY, voice_rtp.parse_rtp(bytes(altered)))


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80\x78" + bytes(20),
        bytes([0x40, 0x78]) + bytes(40),
        struct.pack(">BBHIIHH", 0x90, 0x78, 1, 0, 1, 0xBEDE, 100) + bytes(24),
    ],
    ids=["short", "rtp-version-1", "extension-longer-than-packet"],
)
def test_what_is_not_an_rtpsize_packet_is_malformed(raw: bytes) -> None:
    with pytest.raises(PacketRejected, match="malformed"):
        voice_rtp.parse_rtp(raw)


def test_the_replay_window_takes_each_counter_once() -> None:
    window: ReplayWindow | None = ReplayWindow()
    for counter in (0, 1, 5, 3):
        assert window is not None
        window = accept_counter(window, counter)
    assert window is not None
    assert accept_counter(window, 3) is None, "seen"
    assert accept_counter(window, 5) is None, "the highest, seen"
    assert accept_counter(window, 4) is not None, "late but unseen"
    far = accept_counter(window, 1000)
    assert far is not None and accept_counter(far, 1000 - voice_rtp.REPLAY_WINDOW) is None, "too old to tell"


@pytest.mark.parametrize(
    ("size", "prefix"), [(0, b"\x00"), (63, b"\x3f"), (64, b"\x40\x40"), (16384, b"\x80\x00\x40\x00")]
)
def test_mls_vectors_use_the_shortest_size_prefix(size: int, prefix: bytes) -> None:
    encoded = mls.vector(bytes(size))
    assert encoded.startswith(prefix) and len(encoded) == len(prefix) + size
    assert mls.Reader(encoded).vector() == bytes(size)


def test_a_truncated_commit_is_a_decode_error() -> None:
    with pytest.raises(mls.MlsDecodeError):
        mls.split_commit_welcome(b"\x00\x01\x00\x01\x08")


def member_joined(link: DaveLink, member: davey.DaveSession) -> None:
    """The member's side of the handshake against the server's link, up to the executed transition."""
    member.set_external_sender(link.external_sender)
    proposals = link.proposals_for(member.get_serialized_key_package())
    result = member.process_proposals(davey.ProposalsOperationType.append, proposals[1:])
    assert result is not None and result.welcome is not None
    transition_id, commit = link.commit_welcome(result.commit + result.welcome)
    member.process_commit(commit)
    assert not link.transition_ready(transition_id + 1)
    assert link.transition_ready(transition_id)


def test_the_servers_member_opens_e2ee_frames_and_refuses_clear_ones_after_the_transition() -> None:
    link = DaveLink(1, channel_id=5678, member_id=111)
    member = davey.DaveSession(1, 111, 5678)
    assert link.open_frame(b"clear before the group") == (b"clear before the group", False)
    member_joined(link, member)
    assert sorted(member.get_user_ids()) == sorted(["111", str(LISTENER_USER_ID)])
    assert link.open_frame(member.encrypt_opus(b"\xfc opus frame")) == (b"\xfc opus frame", True)
    assert link.open_frame(OPUS_SILENCE) == (OPUS_SILENCE, False)
    with pytest.raises(DaveError, match="unencrypted_after_transition"):
        link.open_frame(b"\xfc clear frame")
    with pytest.raises(DaveError, match="e2ee_decrypt"):
        link.open_frame(b"\x00" * 20 + b"\xfa\xfa")


def test_a_commit_without_welcome_is_refused() -> None:
    link = DaveLink(1, channel_id=5678, member_id=111)
    member = davey.DaveSession(1, 111, 5678)
    member.set_external_sender(link.external_sender)
    proposals = link.proposals_for(member.get_serialized_key_package())
    result = member.process_proposals(davey.ProposalsOperationType.append, proposals[1:])
    assert result is not None
    with pytest.raises(DaveError, match="commit_without_welcome"):
        link.commit_welcome(result.commit)
    with pytest.raises(DaveError, match="malformed_commit"):
        link.commit_welcome(b"\x00\x01")


def frames_at(arrivals: list[float], sequences: list[int]) -> list[ReceivedFrame]:
    return [ReceivedFrame(a, s, s * 960, b"", False) for a, s in zip(arrivals, sequences, strict=True)]


def test_jitter_is_zero_for_steady_arrivals_and_grows_with_uneven_ones() -> None:
    assert jitter_ms(frames_at([i * 0.02 for i in range(10)], list(range(10)))) == pytest.approx(0.0)
    uneven = [0.0, 0.02, 0.06, 0.06, 0.08]
    assert jitter_ms(frames_at(uneven, list(range(5)))) > 1.0


def test_lost_packets_count_skipped_sequence_numbers_across_the_wrap() -> None:
    assert lost_packets(frames_at([0.0] * 4, [65534, 65535, 1, 2])) == 1


def test_dominant_frequency_of_a_sine_and_of_silence() -> None:
    t = np.arange(48_000) / 48_000
    assert dominant_frequency(np.sin(2 * math.pi * 1000 * t)) == pytest.approx(1000.0, abs=1.0)
    assert dominant_frequency(np.zeros(48_000)) is None
