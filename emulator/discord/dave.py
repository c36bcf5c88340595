"""DAVE (end-to-end encrypted voice) from the voice server's side, for one connected member.

Discord's voice server is the MLS group's external sender and relays key packages, commits and welcomes.
The emulator does that and also takes part in the group as a second member (the "listener", a `davey`
session of its own), so it can open the member's end-to-end encrypted frames and check the audio inside:

1. after the session description (op 4, dave_protocol_version 1) it sends its external sender (op 25);
2. the member sends a key package (op 26); the server answers with an external Add proposal for the
   listener's key package, signed by the external sender, at the member's pending group's epoch 0 (op 27);
3. the member commits it and sends commit + welcome (op 28); the listener joins with the welcome, and the
   server announces the commit under a new transition id (op 29);
4. the member says it is ready (op 23); the server executes the transition (op 22): from then on the
   member's audio must be end-to-end encrypted (Opus silence frames excepted, as DAVE leaves them clear).

Each member gets its own group with the listener: members sharing a channel are not put in one group.
"""

from __future__ import annotations

import davey
from cryptography.hazmat.primitives.asymmetric import ec

from . import mls

# The listener's user id in the MLS group: Discord's own system user.
LISTENER_USER_ID = 643945264868098049
# DAVE frames end with this marker; Opus silence (0xF8 0xFF 0xFE) is sent in the clear.
FRAME_MARKER = b"\xfa\xfa"
OPUS_SILENCE = b"\xf8\xff\xfe"
_MAX_TRANSITION_ID = 0xFFFF


class DaveError(Exception):
    """A DAVE step that failed; `reason` is what the server counts it under."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DaveLink:
    """The server's half of one member's DAVE group: external sender, listener and transitions."""

    def __init__(self, protocol_version: int, channel_id: int, member_id: int) -> None:
        self.protocol_version = protocol_version
        self.channel_id = channel_id
        self.member_id = member_id
        self._signing_key = ec.generate_private_key(ec.SECP256R1())
        self.external_sender = mls.external_sender(self._signing_key, b"emulator-voice-server")
        self.listener = self._new_listener()
        self._last_transition_id = 0
        self.pending_transition: int | None = None
        # Once a transition is executed the member's frames must be end-to-end encrypted.
        self.active = False
        self.commits = 0

    def _new_listener(self) -> davey.DaveSession:
        listener = davey.DaveSession(self.protocol_version, LISTENER_USER_ID, self.channel_id)
        listener.set_external_sender(self.external_sender)
        return listener

    def proposals_for(self, key_package: bytes) -> bytes:
        """Op 27's body for a member's (new) key package: add the listener to the member's fresh group.
        A new key package means the member started over, so the listener does too."""
        if not key_package:
            raise DaveError("empty_key_package")
        self.listener = self._new_listener()
        self.pending_transition = None
        self.active = False
        proposal = mls.external_add_proposal(
            self._signing_key, self.channel_id, 0, self.listener.get_serialized_key_package()
        )
        return mls.append_proposals([proposal])

    def commit_welcome(self, body: bytes) -> tuple[int, bytes]:
        """Take in op 28: the listener joins with the welcome; returns (transition id, commit) for op 29."""
        try:
            commit, welcome = mls.split_commit_welcome(body)
        except mls.MlsDecodeError:
            raise DaveError("malformed_commit") from None
        if welcome is None:
            raise DaveError("commit_without_welcome")
        try:
            self.listener.process_welcome(welcome)
        except Exception:  # davey raises plain exceptions for any MLS failure
            raise DaveError("invalid_welcome") from None
        self.commits += 1
        self._last_transition_id = self._last_transition_id % _MAX_TRANSITION_ID + 1
        self.pending_transition = self._last_transition_id
        return self._last_transition_id, commit

    def transition_ready(self, transition_id: int) -> bool:
        """True when `transition_id` is the pending one (the server then executes it)."""
        if transition_id != self.pending_transition:
            return False
        self.pending_transition = None
        self.active = True
        return True

    def open_frame(self, payload: bytes) -> tuple[bytes, bool]:
        """(the Opus frame inside a payload, whether it was end-to-end encrypted): decrypted when it carries
        the DAVE marker, else taken as is while no transition has been executed (silence at any time)."""
        if payload.endswith(FRAME_MARKER):
            if not self.listener.ready:
                raise DaveError("e2ee_before_group")
            try:
                return self.listener.decrypt(self.member_id, davey.MediaType.audio, payload), True
            except Exception:  # davey raises plain exceptions for a frame it cannot open
                raise DaveError("e2ee_decrypt") from None
        if self.active and payload != OPUS_SILENCE:
            raise DaveError("unencrypted_after_transition")
        return payload, False
