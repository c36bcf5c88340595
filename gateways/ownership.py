"""Bot ownership follows Kafka: a bot belongs to the runner assigned its partition of `discord.actions`.

The partition is the one the producers of actions pick for the key bot_id (aiokafka's and Java's default
partitioner: murmur2 of the key bytes), so the runner that consumes a bot's actions is the one holding its
gateway connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.partitioner import murmur2

from streams.codec import encode_key


def bot_partition(bot_id: str, partitions: int) -> int:
    return (murmur2(encode_key(bot_id)) & 0x7FFFFFFF) % partitions


def owned(bot_ids: Iterable[str], assigned: set[int], partitions: int) -> set[str]:
    """The bots among `bot_ids` whose partition is in `assigned`."""
    if partitions <= 0:
        return set()
    return {bot_id for bot_id in bot_ids if bot_partition(bot_id, partitions) in assigned}


class OwnershipListener(ConsumerRebalanceListener):
    """Forwards the group's decisions to the runner: partitions of the actions topic only."""

    def __init__(
        self,
        topic: str,
        on_revoked: Callable[[set[int]], Awaitable[None]],
        on_assigned: Callable[[set[int]], Awaitable[None]],
    ) -> None:
        self._topic = topic
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    def _partitions(self, tps: Iterable[TopicPartition]) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == self._topic}

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._on_revoked(self._partitions(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._on_assigned(self._partitions(assigned))
