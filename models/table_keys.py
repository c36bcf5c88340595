"""The keys of the processors' state tables: one class per table, which builds its key (`encode`) and reads
it back (`parse`).

Every key starts with the partition key of the events that write it (`models.events.partition_key`: a guild
id, or `dm:<bot id>`), so a table's row lives on the partition of its guild's events and only the worker
that owns that partition writes it. The parts after it say whose value it is (a deployment, a channel, a
user); parts are joined by `/`, which no part may contain. The encoded string is the changelogs' record key:
changing it orphans every value written before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Self
from uuid import UUID

from models.common import part_text

SEPARATOR = "/"


class MalformedTableKey(ValueError):
    """A key that does not have its table's shape; the message names the table and the part."""


@dataclass(frozen=True, slots=True)
class TableKey:
    """The parts of a key are the dataclass fields, in order; `deployment_id` is a UUID, the others text."""

    TABLE: ClassVar[str]
    partition_key: str
    # Made with the key: every key built is encoded (several a message), and building reads the parts anyway.
    _encoded: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        texts = []
        for name in self.__match_args__:
            part = getattr(self, name)
            if not isinstance(part, str):
                texts.append(part_text(part))
            elif not part or SEPARATOR in part:
                raise MalformedTableKey(
                    f"{self.TABLE} key: {name} {part!r} must be non-empty and without {SEPARATOR!r}"
                )
            else:
                texts.append(part)
        object.__setattr__(self, "_encoded", SEPARATOR.join(texts))

    def encode(self) -> str:
        return self._encoded

    @classmethod
    def parse(cls, raw: str) -> Self:
        names = cls.__match_args__
        parts = raw.split(SEPARATOR)
        if len(parts) != len(names):
            raise MalformedTableKey(
                f"{cls.TABLE} key {raw!r}: expected {len(names)} part(s), {SEPARATOR.join(names)}"
            )
        # Any: the fields are the subclass's, which the base's signature cannot name.
        values: dict[str, Any] = dict(zip(names, parts, strict=True))
        if "deployment_id" in values:
            values["deployment_id"] = _deployment_id(cls.TABLE, raw, values["deployment_id"])
        return cls(**values)


def _deployment_id(table: str, raw: str, part: str) -> UUID:
    """The UUID, only in the canonical form `str(UUID)` writes, so that a parsed key re-encodes to `raw`."""
    try:
        deployment_id = UUID(part)
    except ValueError:
        deployment_id = None
    if deployment_id is None or str(deployment_id) != part:
        raise MalformedTableKey(f"{table} key {raw!r}: deployment_id {part!r} is not a canonical UUID")
    return deployment_id


# The shapes of the keys: `k` is the partition key, `d` a deployment id.


@dataclass(frozen=True, slots=True)
class _InChannel(TableKey):  # k/channel
    channel_id: str


@dataclass(frozen=True, slots=True)
class _InChannelSlot(_InChannel):  # k/channel/slot
    slot: str


@dataclass(frozen=True, slots=True)
class _OfUser(TableKey):  # k/user
    user_id: str


@dataclass(frozen=True, slots=True)
class _OfDeployment(TableKey):  # k/d
    deployment_id: UUID


@dataclass(frozen=True, slots=True)
class _OfDeploymentUser(_OfDeployment):  # k/d/user
    user_id: str


@dataclass(frozen=True, slots=True)
class _OfDeploymentChannel(_OfDeployment):  # k/d/channel
    channel_id: str


@dataclass(frozen=True, slots=True)
class _OfDeploymentChannelUser(_OfDeploymentChannel):  # k/d/channel/user
    user_id: str


# The tables. `routing`, `utility`, `games`, `routines`, `arcs`, `announcements`, `hosted_events` and
# `voice_idle` are keyed by exactly the partition key: they are written outside any event too (the catch-up
# after a rebalance, the reminder, game, routine, announcement, events and idle voice timers), where the
# partition comes from the key.


class RoutingKey(TableKey):
    __slots__ = ()
    TABLE = "routing"


class DirectoryKey(TableKey):
    __slots__ = ()
    TABLE = "directory"


class UtilityKey(TableKey):
    __slots__ = ()
    TABLE = "utility"


class GamesKey(TableKey):
    __slots__ = ()
    TABLE = "games"


class RoutineKey(TableKey):
    __slots__ = ()
    TABLE = "routines"


class AnnouncementKey(TableKey):
    """The guild's scheduled announcements (written by the announcement timer too)."""

    __slots__ = ()
    TABLE = "announcements"


class ArcKey(TableKey):
    """The progress of the guild's story arcs with conditional beats (written by the routine timer too)."""

    __slots__ = ()
    TABLE = "arcs"


class HostedEventsKey(TableKey):
    """The guild's hosted events (models.processor_state.EventBook): written by the events timer and by the
    Discord events and trivia answers of the guild."""

    __slots__ = ()
    TABLE = "hosted_events"


class VoiceIdleKey(TableKey):
    """Since when each music player of the guild has been idle (models.processor_state.IdlePlayers):
    written by the idle voice timer only."""

    __slots__ = ()
    TABLE = "voice_idle"


class EconomyKey(TableKey):
    """The guild's wallets as one value (models.processor_state.Wallets), the layout before WalletKey: read
    for members without a wallet of their own, written only to erase a member."""

    __slots__ = ()
    TABLE = "economy"


class WalletKey(_OfUser):
    """A member's wallet in the guild (models.processor_state.Wallet); an agent's is under its bot's user id.
    The guild's wallets share its partition, so every /give of the guild is applied in order."""

    __slots__ = ()
    TABLE = "wallets"


class ContextKey(_InChannel):
    """A channel's context: its ring's head (models.state.RingHead); the messages are under ContextSlotKey."""

    __slots__ = ()
    TABLE = "context_heads"


class ContextSlotKey(_InChannelSlot):
    """One slot of a channel's ring of context messages (models.state.RingSlot)."""

    __slots__ = ()
    TABLE = "context_slots"


class FloorKey(_InChannel):
    """A channel's floor: its ring's head (models.state.RingHead); the rulings are under FloorSlotKey."""

    __slots__ = ()
    TABLE = "floor_heads"


class FloorSlotKey(_InChannelSlot):
    """One slot of a channel's ring of floor rulings (models.state.RingSlot)."""

    __slots__ = ()
    TABLE = "floor_rulings"


def ring_slot_key(key: str, slot: int) -> str:
    """The encoded key of `slot` of the ring under an encoded ContextKey or FloorKey: what ContextSlotKey's
    and FloorSlotKey's `encode` give, without building and checking the parts again for each slot."""
    return f"{key}{SEPARATOR}{slot}"


class MoodKey(_OfDeployment):
    __slots__ = ()
    TABLE = "moods"


class MusicKey(_OfDeployment):
    __slots__ = ()
    TABLE = "music"


class LeaderboardKey(_OfDeployment):
    __slots__ = ()
    TABLE = "leaderboards"


class GameBoardKey(_OfDeployment):
    __slots__ = ()
    TABLE = "game_boards"


class TrackedKey(_OfDeployment):
    __slots__ = ()
    TABLE = "tracked"


class RelationshipKey(_OfDeploymentUser):
    __slots__ = ()
    TABLE = "relationships"


class WarnKey(_OfDeploymentUser):
    __slots__ = ()
    TABLE = "warns"


class LevelKey(_OfDeploymentUser):
    __slots__ = ()
    TABLE = "levels"


class GameRecordKey(_OfDeploymentUser):
    __slots__ = ()
    TABLE = "game_records"


class StreakKey(_OfDeploymentChannel):
    __slots__ = ()
    TABLE = "streaks"


class AutomodKey(_OfDeploymentChannelUser):
    __slots__ = ()
    TABLE = "automod"
