"""Discord's voice gateway v8, the parts a sending bot needs: opcodes, payloads, the transport mode and what
a close code means.

Pure; gateways/voice/connection.py does the I/O.
"""

from __future__ import annotations

import time
from enum import Enum, IntEnum
from typing import Any

VOICE_GATEWAY_VERSION = 8
# The one transport mode asked for: Discord deprecated the xsalsa20 modes; AES-GCM needs no choice of ours.
TRANSPORT_MODE = "aead_xchacha20_poly1305_rtpsize"
# Discord's voice gateway asks for a heartbeat every ~13.75 s; beating at most every 5 s notices a dead
# connection sooner, at the cost of a few bytes.
MAX_HEARTBEAT_S = 5.0


class VoiceOp(IntEnum):
    IDENTIFY = 0
    SELECT_PROTOCOL = 1
    READY = 2
    HEARTBEAT = 3
    SESSION_DESCRIPTION = 4
    SPEAKING = 5
    HEARTBEAT_ACK = 6
    RESUME = 7
    HELLO = 8
    RESUMED = 9
    CLIENTS_CONNECT = 11
    CLIENT_DISCONNECT = 13
    DAVE_PREPARE_TRANSITION = 21
    DAVE_EXECUTE_TRANSITION = 22
    DAVE_TRANSITION_READY = 23
    DAVE_PREPARE_EPOCH = 24
    MLS_EXTERNAL_SENDER = 25
    MLS_KEY_PACKAGE = 26
    MLS_PROPOSALS = 27
    MLS_COMMIT_WELCOME = 28
    MLS_ANNOUNCE_COMMIT_TRANSITION = 29
    MLS_WELCOME = 30
    MLS_INVALID_COMMIT_WELCOME = 31


# Speaking flag 1: MICROPHONE (normal audio); 0 stops the speaking indicator.
SPEAKING_MICROPHONE = 1


class AfterClose(Enum):
    RESUME = "resume"  # same session: op 7 on a new socket
    REJOIN = "rejoin"  # the session is gone: a voice state update over the main gateway, then afresh
    END = "end"  # Discord will not take this connection again (the bot was removed, the mode refused)


# 4006: session no longer valid; 4009: session timed out; 4014: disconnected (moved, kicked, or the main
# gateway session dropped: the manager learns from the VOICE_STATE_UPDATE whether the bot is still wanted).
_REJOIN = frozenset({4006, 4009, 4014})
# 4004: authentication failed; 4011: server not found; 4016: unknown encryption mode; 4021: rate limited;
# 4022: call terminated (the channel was deleted or the bot kicked).
_END = frozenset({4004, 4011, 4016, 4021, 4022})


def after_close(code: int | None) -> AfterClose:
    """What a voice connection closed with `code` does next; 4015 (voice server crashed), network drops and
    everything unknown resume."""
    if code in _REJOIN:
        return AfterClose.REJOIN
    if code in _END:
        return AfterClose.END
    return AfterClose.RESUME


def voice_url(endpoint: str, main_gateway_url: str) -> str:
    """The voice WebSocket URL for VOICE_SERVER_UPDATE's endpoint (`host:port`, no scheme): the scheme of the
    main gateway's URL, so a local emulator speaking plain ws:// is reached the same way as Discord's wss://."""
    if "://" in endpoint:
        base = endpoint
    else:
        scheme = "ws" if main_gateway_url.startswith("ws://") else "wss"
        base = f"{scheme}://{endpoint}"
    return f"{base.rstrip('/')}/?v={VOICE_GATEWAY_VERSION}"


def identify_payload(
    server_id: str, user_id: str, session_id: str, token: str, max_dave_version: int
) -> dict[str, Any]:
    return {
        "op": VoiceOp.IDENTIFY,
        "d": {
            "server_id": server_id,
            "user_id": user_id,
            "session_id": session_id,
            "token": token,
            "max_dave_protocol_version": max_dave_version,
        },
    }


def resume_payload(server_id: str, session_id: str, token: str, seq_ack: int) -> dict[str, Any]:
    return {
        "op": VoiceOp.RESUME,
        "d": {"server_id": server_id, "session_id": session_id, "token": token, "seq_ack": seq_ack},
    }


def select_protocol_payload(address: str, port: int) -> dict[str, Any]:
    return {
        "op": VoiceOp.SELECT_PROTOCOL,
        "d": {"protocol": "udp", "data": {"address": address, "port": port, "mode": TRANSPORT_MODE}},
    }


def heartbeat_payload(seq_ack: int) -> dict[str, Any]:
    """v8 heartbeat: a nonce (the time in ms) and the last sequence number received."""
    return {"op": VoiceOp.HEARTBEAT, "d": {"t": int(time.time() * 1000), "seq_ack": seq_ack}}


def speaking_payload(ssrc: int, speaking: bool) -> dict[str, Any]:
    flags = SPEAKING_MICROPHONE if speaking else 0
    return {"op": VoiceOp.SPEAKING, "d": {"speaking": flags, "delay": 0, "ssrc": ssrc}}


def speaker(data: dict[str, Any]) -> tuple[int, str] | None:
    """(ssrc, user id) from a server's op 5: which member the packets of an SSRC are from. None when the
    op does not say both."""
    ssrc, user_id = data.get("ssrc"), data.get("user_id")
    if not isinstance(ssrc, int) or isinstance(ssrc, bool) or not isinstance(user_id, str) or not user_id:
        return None
    return ssrc, user_id


def transition_ready_payload(transition_id: int) -> dict[str, Any]:
    return {"op": VoiceOp.DAVE_TRANSITION_READY, "d": {"transition_id": transition_id}}


def invalid_commit_payload(transition_id: int) -> dict[str, Any]:
    return {"op": VoiceOp.MLS_INVALID_COMMIT_WELCOME, "d": {"transition_id": transition_id}}


def heartbeat_interval_s(hello: dict[str, Any]) -> float:
    return min(float(hello["heartbeat_interval"]) / 1000.0, MAX_HEARTBEAT_S)
