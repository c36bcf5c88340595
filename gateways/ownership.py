"""Bot ownership follows Kafka: a bot belongs to the runner assigned its partition of `discord.actions`.

The partition is the one the producers of actions pick for the key bot_id (aiokafka's and Java's default
partitioner: murmur2 of the key bytes), so the runner that consumes a bot's actions is the one holding its
gateway connection.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.partitioner import murmur2

from streams.codec import encode_key


def bot_partition(bot_id: str, partitions: int) -> int:
    return (murmur2(encode_key(bot_id)) & 0x7FFFFFFF) % partitions


def owned(bot_ids: Iterable[str], assigned: set[int], partitions: int) -> set[str]:
    """The bots among `bot_ids` whose partition is in `assigned`."""
    if partitions <= 0:
        return set()
    return {bot_id for bot_id in bot_ids if bot_partition(bot_id, partitions) in assigned}
