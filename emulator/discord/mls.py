"""The few MLS (RFC 9420) messages Discord's voice server itself writes or reads for DAVE, as pure functions.

The voice server is the group's external sender: it announces its signature key (op 25), proposes adding
members with external Add proposals it signs (op 27), and relays the commit and welcome a member answers
with (op 28), which arrive concatenated and are split here by parsing the commit. DAVE uses ciphersuite 2
(P-256, SHA-256): signature keys are uncompressed points, signatures DER ECDSA over SHA-256. Encoding is
TLS presentation language with MLS variable-length vector sizes (1, 2 or 4 bytes).
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MLS_10 = 1
WIRE_PUBLIC_MESSAGE = 1
SENDER_MEMBER = 1
SENDER_EXTERNAL = 2
CONTENT_PROPOSAL = 2
CONTENT_COMMIT = 3
PROPOSAL_ADD = 1
CREDENTIAL_BASIC = 1
LEAF_SOURCE_KEY_PACKAGE = 1
LEAF_SOURCE_COMMIT = 3
PROPOSALS_APPEND = 0
_SIGN_LABEL = b"MLS 1.0 FramedContentTBS"


class MlsDecodeError(ValueError):
    pass


def vector(data: bytes) -> bytes:
    """An MLS variable-length vector: a 1, 2 or 4 byte size (top bits say which) and the bytes."""
    size = len(data)
    if size < 1 << 6:
        return bytes([size]) + data
    if size < 1 << 14:
        return struct.pack(">H", 0x4000 | size) + data
    if size < 1 << 30:
        return struct.pack(">I", 0x8000_0000 | size) + data
    raise ValueError("vector too long for MLS")


class Reader:
    """Reads TLS-encoded fields from a buffer, raising MlsDecodeError when it runs short."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise MlsDecodeError(f"truncated at byte {self.offset} (needs {size})")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self) -> bytes:
        first = self.uint(1)
        prefix = first >> 6
        if prefix == 0:
            size = first
        elif prefix == 1:
            size = (first & 0x3F) << 8 | self.uint(1)
        elif prefix == 2:
            size = (first & 0x3F) << 24 | self.uint(3)
        else:
            raise MlsDecodeError("invalid vector size prefix")
        return self.take(size)


def signature_public_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def external_sender(key: ec.EllipticCurvePrivateKey, identity: bytes) -> bytes:
    """ExternalSender {signature_key, basic credential}: the body of op 25."""
    return vector(signature_public_key(key)) + struct.pack(">H", CREDENTIAL_BASIC) + vector(identity)


def group_id(channel_id: int) -> bytes:
    """DAVE's MLS group id: the voice channel id, 8 bytes big-endian."""
    return struct.pack(">Q", channel_id)


def external_add_proposal(
    key: ec.EllipticCurvePrivateKey, channel_id: int, epoch: int, key_package: bytes
) -> bytes:
    """An MLSMessage (public message) from external sender 0 proposing to add `key_package` to the group
    at `epoch`, signed over FramedContentTBS (which carries no group context for an external sender)."""
    content = (
        vector(group_id(channel_id))
        + struct.pack(">QBI", epoch, SENDER_EXTERNAL, 0)
        + vector(b"")
        + struct.pack(">BH", CONTENT_PROPOSAL, PROPOSAL_ADD)
        + key_package
    )
    header = struct.pack(">HH", MLS_10, WIRE_PUBLIC_MESSAGE)
    signature = key.sign(vector(_SIGN_LABEL) + vector(header + content), ec.ECDSA(hashes.SHA256()))
    return header + content + vector(signature)


def append_proposals(messages: list[bytes]) -> bytes:
    """The body of op 27 adding members: operation type append and the proposal messages."""
    return bytes([PROPOSALS_APPEND]) + vector(b"".join(messages))


def _skip_leaf_node(r: Reader) -> None:
    r.vector()  # encryption_key
    r.vector()  # signature_key
    if r.uint(2) != CREDENTIAL_BASIC:
        raise MlsDecodeError("only basic credentials are used by DAVE")
    r.vector()  # identity
    for _ in range(5):  # capabilities: versions, cipher_suites, extensions, proposals, credentials
        r.vector()
    source = r.uint(1)
    if source == LEAF_SOURCE_KEY_PACKAGE:
        r.take(16)  # lifetime
    elif source == LEAF_SOURCE_COMMIT:
        r.vector()  # parent_hash
    r.vector()  # extensions
    r.vector()  # signature


def parse_commit(data: bytes) -> tuple[int, int]:
    """(epoch, end offset) of the public-message commit at the start of `data`."""
    r = Reader(data)
    if (r.uint(2), r.uint(2)) != (MLS_10, WIRE_PUBLIC_MESSAGE):
        raise MlsDecodeError("a commit is an MLS 1.0 public message")
    r.vector()  # group_id
    epoch = r.uint(8)
    if r.uint(1) != SENDER_MEMBER:
        raise MlsDecodeError("a commit comes from a member")
    r.uint(4)  # leaf index
    r.vector()  # authenticated_data
    if r.uint(1) != CONTENT_COMMIT:
        raise MlsDecodeError("not a commit")
    r.vector()  # proposals
    if r.uint(1):  # optional UpdatePath
        _skip_leaf_node(r)
        r.vector()  # path nodes
    r.vector()  # signature
    r.vector()  # confirmation_tag
    r.vector()  # membership_tag
    return epoch, r.offset


def split_commit_welcome(data: bytes) -> tuple[bytes, bytes | None]:
    """Op 28's body: the commit (an MLSMessage) and, when it adds members, the Welcome that follows it
    (a bare Welcome, not wrapped in an MLSMessage)."""
    _, end = parse_commit(data)
    return data[:end], data[end:] or None
