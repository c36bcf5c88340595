"""Crypto-shredding of personal data in events: the personal fields of a dispatch travel AES-256-GCM encrypted
under a data key of the one user they are about. Erasing the user destroys the key (vault/user_keys.py), and
every copy of those fields, in topics, replays and backups alike, becomes unreadable.

The associated data is the event id and the key id, so a sealed part moved onto another event, or relabelled
with another user's key id, does not open. Key lookup is the vault's: this module only needs `DataKeys`.

The other topics' payloads (inference requests and results, ...) are sealed the same way by `seal_payload`:
their topic's `PayloadSealing` names the personal fields, which travel blank beside a `sealed` part.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ValidationError

from models.events import EventEnvelope, SealedData
from streams.codec import CodecError

NONCE_BYTES = 12
DATA_KEY_BYTES = 32

# The top-level dispatch fields that say who someone is or what they wrote: message text and its
# attachments and embeds, the user objects (author, member, user: username, global_name, nick, avatar, id),
# the users a message mentions or answers, and an interaction's command with the options typed into it.
# Whatever else a dispatch holds (ids of the guild, channel and message, the type, timestamps) stays clear.
PERSONAL_FIELDS = frozenset(
    {
        "content",
        "embeds",
        "attachments",
        "author",
        "member",
        "user",
        "user_id",
        "message_author_id",
        "mentions",
        "referenced_message",
        "message_snapshots",
        "interaction",
        "interaction_metadata",
        "nick",
        "avatar",
        "global_name",
        "username",
        "data",
    }
)


class SealBroken(CodecError):
    """A sealed part that does not open under its own key: tampered, or moved from another event."""


@dataclass(frozen=True)
class DataKey:
    """One user's data key. The key id is random: a ciphertext's key id names no one."""

    key_id: str
    key: bytes = field(repr=False)
    aead: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key) != DATA_KEY_BYTES:
            raise ValueError(f"data key {self.key_id}: must be {DATA_KEY_BYTES} bytes, got {len(self.key)}")
        # Built once per key: the hot path encrypts and decrypts without re-expanding it.
        object.__setattr__(self, "aead", AESGCM(self.key))


class DataKeys(Protocol):
    """Where data keys come from (vault.user_keys.UserKeyStore)."""

    async def data_key_for(self, user_id: str) -> DataKey: ...

    async def data_key_by_id(self, key_id: str) -> DataKey | None: ...


def _associated_data(event_id: str, key_id: str, field: str | None) -> bytes:
    return f"deep-sealed\x00{event_id}\x00{key_id}\x00{field or ''}".encode()


def _base64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _sealed_part(
    key: DataKey, event_id: str, fields: Mapping[str, Any], field: str | None = None
) -> dict[str, Any]:
    """A `SealedData` as its record holds it. (Payloads carry many parts, one per other author's prompt line:
    building each as a model only to dump it again cost more than its encryption.)"""
    nonce = os.urandom(NONCE_BYTES)
    plaintext = orjson.dumps(fields)
    ciphertext = key.aead.encrypt(nonce, plaintext, _associated_data(event_id, key.key_id, field))
    return {"key_id": key.key_id, "nonce": _base64(nonce), "ciphertext": _base64(ciphertext), "field": field}


def seal_fields(
    key: DataKey, event_id: str, fields: Mapping[str, Any], field: str | None = None
) -> SealedData:
    # Built from values made right here: no validation needed.
    return SealedData.model_construct(**_sealed_part(key, event_id, fields, field))


def open_fields(key: DataKey, event_id: str, sealed: SealedData) -> dict[str, Any]:
    """The sealed fields; SealBroken when they were not sealed for this event, this part, under this key."""
    if sealed.key_id != key.key_id:
        raise SealBroken(f"sealed: key id {sealed.key_id!r} asked, key {key.key_id!r} given")
    try:
        nonce = binascii.a2b_base64(sealed.nonce, strict_mode=True)
        ciphertext = binascii.a2b_base64(sealed.ciphertext, strict_mode=True)
        associated = _associated_data(event_id, key.key_id, sealed.field)
        plaintext = key.aead.decrypt(nonce, ciphertext, associated)
    except (binascii.Error, ValueError):
        raise SealBroken("sealed: nonce or ciphertext is not valid base64 of the right size") from None
    except InvalidTag:
        raise SealBroken(
            f"sealed: does not open for event {event_id!r} under key {sealed.key_id!r} (tampered or moved)"
        ) from None
    fields = orjson.loads(plaintext)
    if not isinstance(fields, dict) or (sealed.field is not None and list(fields) != [sealed.field]):
        raise SealBroken(f"sealed: the plaintext is not the object its part {sealed.field!r} holds")
    return fields


def _user_id(value: Any) -> str | None:
    # A tuple, not `str | int`: this runs for every event, and a union type is slower to test against.
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def subject_user_id(data: Mapping[str, Any]) -> str | None:
    """The user a dispatch is about: a message's author, an interaction's or a member event's user, a
    reaction's or a typing user's id. None for guild and channel objects, which are about no one person."""
    for holder in (data.get("author"), data.get("user"), (data.get("member") or {}).get("user")):
        if isinstance(holder, dict) and (user_id := _user_id(holder.get("id"))) is not None:
            return user_id
    return _user_id(data.get("user_id"))


def reference_owners(data: Mapping[str, Any], subject: str) -> dict[str, str]:
    """{field: user} for the fields of a dispatch that are about another user than its subject: the message a
    reply quotes (its author's words) and the author of a message reacted to."""
    quoted = data.get("referenced_message")
    owners = {
        "referenced_message": subject_user_id(quoted) if isinstance(quoted, dict) else None,
        "message_author_id": _user_id(data.get("message_author_id")),
    }
    return {name: owner for name, owner in owners.items() if owner is not None and owner != subject}


def _mentioned_id(mention: Any) -> str | None:
    return _user_id(mention.get("id")) if isinstance(mention, dict) else None


def others_mentioned(data: Mapping[str, Any], subject: str) -> dict[str, list[Any]]:
    """{user: their user objects} for the users a message mentions other than its subject, in the order
    first mentioned."""
    mentioned: dict[str, list[Any]] = {}
    mentions = data.get("mentions")
    for mention in mentions if isinstance(mentions, list) else []:
        owner = _mentioned_id(mention)
        if owner is not None and owner != subject:
            mentioned.setdefault(owner, []).append(mention)
    return mentioned


@dataclass(frozen=True, slots=True)
class SealedDispatch:
    """A dispatch's data as its record carries it: the clear fields, the subject's personal fields sealed
    under the subject's key, and the fields about other users each sealed under theirs."""

    clear: dict[str, Any]
    sealed: SealedData
    references: list[SealedData]


async def seal_dispatch(event_id: str, data: Mapping[str, Any], keys: DataKeys) -> SealedDispatch | None:
    """The dispatch's personal fields sealed for the event `event_id`; None when it is about no one person
    (it travels whole)."""
    subject = subject_user_id(data)
    if subject is None:
        return None
    owners = reference_owners(data, subject)
    references = [
        seal_fields(await keys.data_key_for(owner), event_id, {name: data[name]}, field=name)
        for name, owner in owners.items()
    ]
    # Each mentioned user's objects under their own key; the subject's part keeps only their own mention.
    mentioned = others_mentioned(data, subject)
    references += [
        seal_fields(await keys.data_key_for(owner), event_id, {"mentions": objects}, field="mentions")
        for owner, objects in mentioned.items()
    ]
    clear: dict[str, Any] = {}
    personal: dict[str, Any] = {}
    for name, value in data.items():
        if name not in PERSONAL_FIELDS:
            clear[name] = value
        elif name not in owners:
            personal[name] = value
    if mentioned:
        personal["mentions"] = [
            mention for mention in data["mentions"] if _mentioned_id(mention) not in mentioned
        ]
    sealed = seal_fields(await keys.data_key_for(subject), event_id, personal)
    return SealedDispatch(clear, sealed, references)


async def seal_envelope(envelope: EventEnvelope, keys: DataKeys) -> EventEnvelope:
    """The envelope with its subject's personal fields sealed under the subject's data key, and the fields
    about other users each under theirs; unchanged when the dispatch is about no one person."""
    sealed = await seal_dispatch(envelope.event_id, envelope.data, keys)
    if sealed is None:
        return envelope
    return envelope.model_copy(
        update={"data": sealed.clear, "sealed": sealed.sealed, "sealed_references": sealed.references}
    )


def sealed_key_ids(envelope: EventEnvelope) -> list[str]:
    """The ids of the keys that open the event's sealed parts."""
    return [part.key_id for part in (envelope.sealed, *envelope.sealed_references) if part is not None]


async def open_envelope(envelope: EventEnvelope, keys: DataKeys) -> EventEnvelope | None:
    """The one way every consumer reads an event's dispatch: the envelope with its data whole again, or None
    when its subject was erased (the key is destroyed: the personal fields are gone for good). A field about
    another user who was erased is left out, as is an erased user among the mentions (the subject's own
    mentions come first, then the others' in the order first mentioned). Raises SealBroken for a sealed part
    tampered with or moved."""
    sealed = envelope.sealed
    if sealed is None:
        return envelope
    key = await keys.data_key_by_id(sealed.key_id)
    if key is None:
        return None
    personal = open_fields(key, envelope.event_id, sealed)
    for part in envelope.sealed_references:
        reference_key = await keys.data_key_by_id(part.key_id)
        if reference_key is None:
            continue
        opened = open_fields(reference_key, envelope.event_id, part)
        if part.field == "mentions":
            personal["mentions"] = [*personal.get("mentions", []), *opened["mentions"]]
        else:
            personal.update(opened)
    return envelope.model_copy(
        update={"data": {**envelope.data, **personal}, "sealed": None, "sealed_references": []}
    )


async def opened_or_clear(envelope: EventEnvelope, keys: DataKeys) -> EventEnvelope:
    """For readers that count events whoever sent them (analytics, the playground): the envelope opened, or
    its clear part alone when its subject was erased."""
    return await open_envelope(envelope, keys) or envelope


# Records other than events: a payload model with a `sealed` part -------------------------------------------

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class PayloadSealing(Generic[P]):
    """Which fields of a topic's payload are personal and whose they are. `fields` maps each field's dotted
    path to the blank the clear record holds in its place (a path a payload lacks, as one kind of action lacks
    another's fields, is skipped); `subject` gives the user the record is about (None: about no one person,
    left clear); `record_id` gives the id the sealed part is bound to. `item_owners` maps a personal list
    field to the owner of one of its items (None: the subject's): an item about another user is sealed
    apart under that user's key, so erasing them makes exactly their items unopenable, and an opened record
    lacks them as if they had never been there (a prompt's turn of an erased member)."""

    kind: str
    fields: Mapping[str, Any]
    subject: Callable[[P], str | None]
    record_id: Callable[[P], str]
    item_owners: Mapping[str, Callable[[Mapping[str, Any]], str | None]] = field(default_factory=dict)

    def bound_id(self, payload: P) -> str:
        # The kind too: a request's sealed part copied onto its result (same id) does not open.
        return f"{self.kind}:{self.record_id(payload)}"


def _place(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, name = path.split(".")
    for parent in parents:
        document = document[parent]
    document[name] = value


# A path missing from a payload: a value no document holds.
_ABSENT = object()


def _node(document: dict[str, Any], path: str) -> Any:
    node: Any = document
    for name in path.split("."):
        node = node.get(name, _ABSENT) if isinstance(node, dict) else _ABSENT
    return node


def _held(sealing: PayloadSealing[Any], document: dict[str, Any]) -> dict[str, Any]:
    """The sealing's paths this payload holds, with their values."""
    return {path: node for path in sealing.fields if (node := _node(document, path)) is not _ABSENT}


def _item_path(path: str) -> tuple[str, int]:
    list_path, _, index = path.rpartition(".")
    return list_path, int(index)


async def _open_items(
    sealing: PayloadSealing[Any],
    document: dict[str, Any],
    bound_id: str,
    parts: list[SealedData],
    keys: DataKeys,
) -> None:
    """Puts the items sealed apart back in their lists, and leaves out those whose owner was erased."""
    holes = {
        f"{path}.{index}"
        for path in sealing.item_owners
        if isinstance(items := _node(document, path), list)
        for index, item in enumerate(items)
        if item is None
    }
    if holes != {part.field for part in parts}:
        raise SealBroken(f"sealed: the {sealing.kind}'s parts apart do not fill the items held apart")
    for part in parts:
        owner_key = await keys.data_key_by_id(part.key_id)
        if owner_key is not None and part.field is not None:
            list_path, index = _item_path(part.field)
            _node(document, list_path)[index] = open_fields(owner_key, bound_id, part)[part.field]
    for path in sealing.item_owners:
        if isinstance(items := _node(document, path), list):
            items[:] = [item for item in items if item is not None]


async def sealed_document(
    payload: P, sealing: PayloadSealing[P] | None, keys: DataKeys
) -> dict[str, Any] | None:
    """The payload as a JSON document with its personal fields blank and sealed under its subject's data key;
    None when its topic holds no personal data, or the payload is about no one person or already sealed."""
    if sealing is None or getattr(payload, "sealed", None) is not None:
        return None
    subject = sealing.subject(payload)
    if subject is None:
        return None
    key = await keys.data_key_for(subject)
    bound_id = sealing.bound_id(payload)
    document = payload.model_dump(mode="json")
    references = []
    for list_path, owner_of in sealing.item_owners.items():
        items = _node(document, list_path)
        for index, item in enumerate(items if isinstance(items, list) else []):
            owner = owner_of(item) if isinstance(item, dict) else None
            if owner is not None and owner != subject:
                path = f"{list_path}.{index}"
                references.append(_sealed_part(await keys.data_key_for(owner), bound_id, {path: item}, path))
                # The subject's part holds the item's place, empty.
                items[index] = None
    personal = _held(sealing, document)
    for path in personal:
        _place(document, path, sealing.fields[path])
    document["sealed"] = _sealed_part(key, bound_id, personal)
    if references:
        document["sealed_references"] = references
    return document


async def seal_payload(payload: P, sealing: PayloadSealing[P] | None, keys: DataKeys) -> P:
    """The payload with its personal fields blank and sealed under its subject's data key; unchanged when its
    topic holds no personal data, or the payload is about no one person or already sealed."""
    document = await sealed_document(payload, sealing, keys)
    return payload if document is None else type(payload).model_validate(document)


async def open_payload(payload: P, sealing: PayloadSealing[P] | None, keys: DataKeys) -> P | None:
    """The payload with its personal fields back, or None when its subject was erased (the key is destroyed).
    Raises SealBroken for a sealed part tampered with, moved, or not holding the topic's personal fields."""
    sealed = getattr(payload, "sealed", None)
    if sealing is None or sealed is None:
        return payload
    key = await keys.data_key_by_id(sealed.key_id)
    if key is None:
        return None
    bound_id = sealing.bound_id(payload)
    personal = open_fields(key, bound_id, sealed)
    document = payload.model_dump(mode="json")
    if set(personal) != set(_held(sealing, document)):
        raise SealBroken(f"sealed: the {sealing.kind} part holds {sorted(personal)}, not its personal fields")
    for path, value in personal.items():
        _place(document, path, value)
    references: list[SealedData] = getattr(payload, "sealed_references", [])
    await _open_items(sealing, document, bound_id, references, keys)
    document["sealed"] = None
    if references:
        document["sealed_references"] = []
    try:
        return type(payload).model_validate(document)
    except ValidationError as exc:
        raise SealBroken(f"sealed: the opened {sealing.kind} is invalid: {exc.errors()[0]['msg']}") from None
