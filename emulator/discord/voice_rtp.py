"""Voice UDP packets as pure functions: IP discovery, RTP headers, the `aead_xchacha20_poly1305_rtpsize`
transport encryption and replay protection.

rtpsize: the RTP header, its CSRCs and the 4-byte extension header (profile, length in 32-bit words) are the
associated data; the extension body and the payload are the ciphertext (16-byte tag included); the last 4
bytes of the packet are a big-endian counter, the nonce's first 4 bytes (the other 20 are zero).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt
from nacl.exceptions import CryptoError

TRANSPORT_MODE = "aead_xchacha20_poly1305_rtpsize"
RTP_VERSION = 2
RTP_HEADER_SIZE = 12
OPUS_PAYLOAD_TYPE = 0x78
NONCE_COUNTER_SIZE = 4
NONCE_SIZE = 24
AEAD_TAG_SIZE = 16
EXTENSION_HEADER_SIZE = 4
DISCOVERY_SIZE = 74
DISCOVERY_REQUEST = 1
DISCOVERY_RESPONSE = 2
# The discovery body after type and length: SSRC (4), address (64, NUL-padded ASCII), port (2).
DISCOVERY_BODY_SIZE = 70
DISCOVERY_ADDRESS_SIZE = 64
# Counters this far behind the highest one seen are refused without looking them up.
REPLAY_WINDOW = 64


class PacketRejected(Exception):
    """A voice packet the server drops; `reason` is the counter it is counted under."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RtpPacket:
    sequence: int
    timestamp: int
    ssrc: int
    payload_type: int
    # Associated data: fixed header, CSRCs and the extension header when present.
    authenticated: bytes
    # Bytes of the extension body at the start of the plaintext (0 without an extension).
    extension_body_size: int
    ciphertext: bytes
    counter: int


def is_discovery_request(packet: bytes) -> bool:
    return len(packet) == DISCOVERY_SIZE and struct.unpack_from(">HH", packet, 0) == (
        DISCOVERY_REQUEST,
        DISCOVERY_BODY_SIZE,
    )


def discovery_ssrc(packet: bytes) -> int:
    ssrc: int = struct.unpack_from(">I", packet, 4)[0]
    return ssrc


def discovery_response(ssrc: int, address: str, port: int) -> bytes:
    """The answer to an IP discovery request: the address and port the request came from."""
    encoded = address.encode("ascii")
    if len(encoded) >= DISCOVERY_ADDRESS_SIZE:
        raise ValueError(f"address {address!r} does not fit the discovery packet")
    return struct.pack(
        f">HHI{DISCOVERY_ADDRESS_SIZE}sH", DISCOVERY_RESPONSE, DISCOVERY_BODY_SIZE, ssrc, encoded, port
    )


def parse_rtp(packet: bytes) -> RtpPacket:
    """The RTP framing of a voice packet; PacketRejected("malformed") when it is not one."""
    if len(packet) < RTP_HEADER_SIZE + AEAD_TAG_SIZE + NONCE_COUNTER_SIZE:
        raise PacketRejected("malformed")
    first, second, sequence, timestamp, ssrc = struct.unpack_from(">BBHII", packet, 0)
    if first >> 6 != RTP_VERSION:
        raise PacketRejected("malformed")
    csrc_count = first & 0x0F
    has_extension = bool(first & 0x10)
    header_end = RTP_HEADER_SIZE + 4 * csrc_count
    extension_body_size = 0
    if has_extension:
        if len(packet) < header_end + EXTENSION_HEADER_SIZE:
            raise PacketRejected("malformed")
        words: int = struct.unpack_from(">H", packet, header_end + 2)[0]
        extension_body_size = 4 * words
        header_end += EXTENSION_HEADER_SIZE
    body_end = len(packet) - NONCE_COUNTER_SIZE
    if body_end - header_end < AEAD_TAG_SIZE + extension_body_size:
        raise PacketRejected("malformed")
    return RtpPacket(
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload_type=second & 0x7F,
        authenticated=packet[:header_end],
        extension_body_size=extension_body_size,
        ciphertext=packet[header_end:body_end],
        counter=struct.unpack_from(">I", packet, body_end)[0],
    )


def open_rtpsize(secret_key: bytes, packet: RtpPacket) -> bytes:
    """The payload (extension body removed) of an rtpsize packet; PacketRejected("decrypt") when the tag
    does not verify (wrong key, altered header or body)."""
    nonce = struct.pack(">I", packet.counter) + bytes(NONCE_SIZE - NONCE_COUNTER_SIZE)
    try:
        plaintext = crypto_aead_xchacha20poly1305_ietf_decrypt(
            packet.ciphertext, packet.authenticated, nonce, secret_key
        )
    except CryptoError:
        raise PacketRejected("decrypt") from None
    return plaintext[packet.extension_body_size :]


@dataclass(frozen=True)
class ReplayWindow:
    """The highest nonce counter accepted and a bit per counter below it (bit i: highest - i seen)."""

    highest: int = -1
    seen: int = 0


def accept_counter(window: ReplayWindow, counter: int) -> ReplayWindow | None:
    """The window after accepting `counter`, or None when it was used already or is too old to tell."""
    if counter > window.highest:
        shift = counter - window.highest
        seen = ((window.seen << shift) | 1) & ((1 << REPLAY_WINDOW) - 1)
        return ReplayWindow(counter, seen)
    age = window.highest - counter
    if age >= REPLAY_WINDOW or window.seen >> age & 1:
        return None
    return ReplayWindow(window.highest, window.seen | 1 << age)
