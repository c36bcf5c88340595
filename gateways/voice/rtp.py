"""Voice UDP: IP discovery and RTP packets of Opus frames sealed with `aead_xchacha20_poly1305_rtpsize`.

The rtpsize AEAD modes take the RTP header as associated data (not encrypted, authenticated) and a 24-byte
nonce whose first 4 bytes are a big-endian counter and the rest zeros; the counter goes after the
ciphertext so the receiver can rebuild the nonce. A nonce must never repeat under one key: the counter
lives with the key: each session description's key gets a new Packetizer.
Pure: gateways/voice/connection.py sends what this builds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

# RTP version 2, no padding, no extension, no CSRC; payload type 0x78 (120) is Discord's Opus.
RTP_VERSION_FLAGS = 0x80
OPUS_PAYLOAD_TYPE = 0x78
RTP_HEADER = struct.Struct(">BBHII")
NONCE_COUNTER = struct.Struct(">I")
NONCE_BYTES = 24
# 48 kHz, 20 ms frames: the RTP timestamp advances 960 samples a packet.
SAMPLES_PER_FRAME = 960
# Opus's encoding of silence: Discord asks for five of these after the last audio frame, so the receiver's
# decoder does not interpolate the gap.
SILENCE_FRAME = b"\xf8\xff\xfe"
SILENCE_FRAMES_AFTER_AUDIO = 5

DISCOVERY_REQUEST = 0x1
DISCOVERY_RESPONSE = 0x2
DISCOVERY_PACKET_BYTES = 74
DISCOVERY_BODY_BYTES = 70
DISCOVERY_HEADER = struct.Struct(">HHI")
DISCOVERY_ADDRESS_BYTES = 64


AEAD_TAG_BYTES = 16
EXTENSION_HEADER = struct.Struct(">HH")


class DiscoveryError(ValueError):
    """A UDP packet that is not an IP discovery response."""


def discovery_request(ssrc: int) -> bytes:
    """The 74-byte request: type 1, length 70, the SSRC, then zeros where the answer's address and port go."""
    return DISCOVERY_HEADER.pack(DISCOVERY_REQUEST, DISCOVERY_BODY_BYTES, ssrc) + bytes(
        DISCOVERY_ADDRESS_BYTES + 2
    )


def discovery_answer(packet: bytes) -> tuple[str, int]:
    """The external address and port a discovery response reports (NUL-terminated ASCII, big-endian port)."""
    if len(packet) != DISCOVERY_PACKET_BYTES:
        raise DiscoveryError(f"discovery response of {len(packet)} bytes, expected {DISCOVERY_PACKET_BYTES}")
    kind, _, _ = DISCOVERY_HEADER.unpack_from(packet)
    if kind != DISCOVERY_RESPONSE:
        raise DiscoveryError(f"discovery packet of type {kind}, expected {DISCOVERY_RESPONSE}")
    field = packet[DISCOVERY_HEADER.size : DISCOVERY_HEADER.size + DISCOVERY_ADDRESS_BYTES]
    address = field.split(b"\0", 1)[0].decode("ascii")
    (port,) = struct.unpack_from(">H", packet, DISCOVERY_PACKET_BYTES - 2)
    return address, port


@dataclass(slots=True)
class Packetizer:
    """One sender's RTP stream: sequence and timestamp wrap as RTP's 16 and 32 bits do."""

    ssrc: int
    key: bytes
    sequence: int = 0
    timestamp: int = 0
    nonce: int = 0

    def packet(self, opus: bytes) -> bytes:
        header = RTP_HEADER.pack(
            RTP_VERSION_FLAGS, OPUS_PAYLOAD_TYPE, self.sequence, self.timestamp, self.ssrc
        )
        counter = NONCE_COUNTER.pack(self.nonce)
        sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(
            opus, header, counter + bytes(NONCE_BYTES - NONCE_COUNTER.size), self.key
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + SAMPLES_PER_FRAME) & 0xFFFFFFFF
        self.nonce = (self.nonce + 1) & 0xFFFFFFFF
        return header + sealed + counter


@dataclass(frozen=True)
class ReceivedPacket:
    ssrc: int
    sequence: int
    # The Opus frame, or its DAVE-encrypted form.
    payload: bytes


def open_packet(key: bytes, packet: bytes) -> ReceivedPacket | None:
    """Another speaker's rtpsize packet opened: the header, its CSRCs and the extension header are the
    associated data, the extension body is dropped from the plaintext. None for anything else (RTCP, not
    Opus, a tag that does not verify)."""
    if len(packet) < RTP_HEADER.size + AEAD_TAG_BYTES + NONCE_COUNTER.size:
        return None
    first, payload_type, sequence, _, ssrc = RTP_HEADER.unpack_from(packet)
    if first >> 6 != 2 or payload_type & 0x7F != OPUS_PAYLOAD_TYPE:
        return None
    header_end = RTP_HEADER.size + 4 * (first & 0x0F)
    extension_body = 0
    if first & 0x10:
        if len(packet) < header_end + EXTENSION_HEADER.size:
            return None
        extension_body = 4 * EXTENSION_HEADER.unpack_from(packet, header_end)[1]
        header_end += EXTENSION_HEADER.size
    counter = packet[-NONCE_COUNTER.size :]
    try:
        plaintext = crypto_aead_xchacha20poly1305_ietf_decrypt(
            packet[header_end : -NONCE_COUNTER.size],
            packet[:header_end],
            counter + bytes(NONCE_BYTES - NONCE_COUNTER.size),
            key,
        )
    except CryptoError:
        return None
    return ReceivedPacket(ssrc, sequence, plaintext[extension_body:])
