"""Operations tooling behind `deep ops` on the broker: topics, consumer lag, dead letters.

Kafka-facing functions take the bootstrap address and return plain results; the CLI (ops/cli.py)
only renders them. Re-driving dead letters is transactional: the re-produced records and the re-drive
group's committed offset are written in one Kafka transaction, so a dead letter is re-driven once even if
the re-drive is interrupted and run again.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from models.analytics import ConsumerLag
from models.operations import DeadLetter
from streams.catalog import CATALOG, DEAD_LETTERS
from streams.codec import Codec, CodecError, encode_key
from streams.history import KafkaTools, Track, no_progress, records_between

# Kafka's config_source for a value nobody set (the broker's default).
DEFAULT_CONFIG_SOURCE = 5
REDRIVE_HEADER = "deep.redrive"
# Re-driven records per transaction: bounds what an interrupted re-drive leaves to the next run.
REDRIVE_CHUNK = 500
_CATALOG_NAMES = {spec.name for spec in CATALOG}
_DEAD_LETTER_CODEC: Codec[DeadLetter] = Codec(DeadLetter)


@dataclass(frozen=True)
class TopicOverview:
    name: str
    in_catalog: bool
    partitions: int
    # Records between the first and the end offsets (compaction and markers make it an upper bound).
    records: int
    cleanup_policy: str
    retention_ms: str


@dataclass(frozen=True)
class PartitionState:
    partition: int
    leader: int
    replicas: tuple[int, ...]
    in_sync: tuple[int, ...]
    first_offset: int
    end_offset: int


@dataclass(frozen=True)
class TopicDescription:
    name: str
    partitions: tuple[PartitionState, ...]
    # name -> (value, set explicitly rather than the broker's default)
    configs: dict[str, tuple[str, bool]]


def catalog_name(topic: str, namespace: str) -> str | None:
    """The catalog name of a topic of the namespace, or None when the catalog does not define it."""
    if not topic.startswith(namespace):
        return None
    name = topic[len(namespace) :]
    return name if name in _CATALOG_NAMES else None


async def _configs(
    admin: AIOKafkaAdminClient, topics: Sequence[str]
) -> dict[str, dict[str, tuple[str, bool]]]:
    if not topics:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
    configs: dict[str, dict[str, tuple[str, bool]]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            configs[resource["resource_name"]] = {
                entry["config_names"]: (
                    entry["config_value"] or "",
                    entry["config_source"] != DEFAULT_CONFIG_SOURCE,
                )
                for entry in resource["config_entries"]
            }
    return configs


async def list_topics(bootstrap: str, prefix: str = "") -> list[TopicOverview]:
    """Every topic whose name starts with `prefix` (a namespace), internal topics left out."""
    async with KafkaTools(bootstrap) as kafka:
        names = sorted(
            n for n in await kafka.admin.list_topics() if n.startswith(prefix) and not n.startswith("__")
        )
        if not names:
            return []
        described = {t["topic"]: t for t in await kafka.admin.describe_topics(names)}
        tps = [TopicPartition(name, p["partition"]) for name in names for p in described[name]["partitions"]]
        firsts, ends = await kafka.reader.beginning_offsets(tps), await kafka.reader.end_offsets(tps)
        configs = await _configs(kafka.admin, names)
    overviews = []
    for name in names:
        config = configs.get(name, {})
        topic_tps = [tp for tp in tps if tp.topic == name]
        overviews.append(
            TopicOverview(
                name=name,
                in_catalog=catalog_name(name, prefix) is not None,
                partitions=len(topic_tps),
                records=sum(ends[tp] - firsts[tp] for tp in topic_tps),
                cleanup_policy=config.get("cleanup.policy", ("", False))[0],
                retention_ms=config.get("retention.ms", ("", False))[0],
            )
        )
    return overviews


async def describe_topic(bootstrap: str, name: str) -> TopicDescription:
    async with KafkaTools(bootstrap) as kafka:
        parts = sorted((await kafka.describe(name))["partitions"], key=lambda p: p["partition"])
        tps = [TopicPartition(name, p["partition"]) for p in parts]
        firsts, ends = await kafka.reader.beginning_offsets(tps), await kafka.reader.end_offsets(tps)
        configs = (await _configs(kafka.admin, [name])).get(name, {})
    return TopicDescription(
        name=name,
        partitions=tuple(
            PartitionState(
                partition=p["partition"],
                leader=p["leader"],
                replicas=tuple(p["replicas"]),
                in_sync=tuple(p["isr"]),
                first_offset=firsts[tp],
                end_offset=ends[tp],
            )
            for p, tp in zip(parts, tps, strict=True)
        ),
        configs=configs,
    )


# Consumer lag ------------------------------------------------------------------------------------------


async def consumer_lag(
    bootstrap: str, groups: Sequence[str] = (), topic_prefix: str = ""
) -> list[ConsumerLag]:
    """Lag per group, topic and partition (partitions a group never committed are not listed). No groups:
    every group the broker knows."""
    # Here, not at the top: sinks.lag brings the ClickHouse client and pyarrow, which `deep` need not load.
    from sinks.lag import sample_lag

    async with KafkaTools(bootstrap) as kafka:
        wanted = list(groups) or sorted(str(group[0]) for group in await kafka.admin.list_consumer_groups())
        return await kafka.coordinated(lambda: sample_lag(kafka.admin, kafka.reader, wanted, topic_prefix))


# Dead letters ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterEntry:
    """One record of a dead-letter topic: the letter, or why it cannot be read."""

    partition: int
    offset: int
    letter: DeadLetter | None
    unreadable: str | None
    # Already re-driven (behind the re-drive group's committed offset).
    redriven: bool


@dataclass
class RedriveReport:
    redriven: int = 0
    unreadable: int = 0
    # Letters that keep only the start of their record: not re-driven (the whole record is on its source
    # topic while its retention lasts, at the offset the letter names).
    partial: int = 0
    # Dead letters still waiting after this run (the limit stopped it).
    remaining: int = 0
    by_target: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        """Dead letters this run moved past, re-driven or not."""
        return self.redriven + self.unreadable + self.partial


def resolve_dead_letter_topic(topic: str, namespace: str) -> str:
    """`discord.events` or `deadletter.discord.events` (catalog names, in the namespace) or a full name."""
    if topic in DEAD_LETTERS:
        return DEAD_LETTERS[topic].name_in(namespace)
    if topic in {spec.name for spec in DEAD_LETTERS.values()}:
        return f"{namespace}{topic}"
    return topic


def redrive_group(dead_letter_topic_name: str) -> str:
    """The group whose committed offsets mark how far a dead-letter topic was re-driven."""
    return f"deep-redrive.{dead_letter_topic_name}"


def original_value(letter: DeadLetter) -> bytes:
    """The bytes the source record carried."""
    if letter.value_encoding == "base64":
        return base64.b64decode(letter.value)
    return letter.value.encode()


def _read_letter(record: ConsumerRecord[bytes, bytes], redriven: bool) -> DeadLetterEntry:
    try:
        letter: DeadLetter | None = _DEAD_LETTER_CODEC.decode(record.value)
        unreadable = None
    except CodecError as error:
        letter, unreadable = None, str(error)
    return DeadLetterEntry(record.partition, record.offset, letter, unreadable, redriven)


async def _redriven_up_to(kafka: KafkaTools, group: str, tps: list[TopicPartition]) -> dict[int, int]:
    committed = await kafka.coordinated(
        lambda: kafka.admin.list_consumer_group_offsets(group, partitions=tps)
    )
    return {tp.partition: meta.offset for tp, meta in committed.items() if meta.offset >= 0}


async def inspect_dead_letters(
    bootstrap: str, topic: str, *, limit: int = 20, include_redriven: bool = False
) -> list[DeadLetterEntry]:
    """The first `limit` dead letters not yet re-driven (or all of them), partition by partition."""
    async with KafkaTools(bootstrap) as kafka:
        tps = await kafka.partitions(topic)
        done = await _redriven_up_to(kafka, redrive_group(topic), tps)
        firsts, ends = await kafka.reader.beginning_offsets(tps), await kafka.reader.end_offsets(tps)
        kafka.reader.assign(tps)
        entries: list[DeadLetterEntry] = []
        for tp in tps:
            start = firsts[tp] if include_redriven else max(firsts[tp], done.get(tp.partition, 0))
            async for record in records_between(kafka.reader, tp, start, ends[tp]):
                if len(entries) >= limit:
                    return entries
                entries.append(_read_letter(record, record.offset < done.get(tp.partition, 0)))
        return entries


async def redrive(
    bootstrap: str, topic: str, *, to: str | None = None, limit: int | None = None, track: Track = no_progress
) -> RedriveReport:
    """Produce the original bytes of each pending dead letter back to its source topic (or `to`), keyed
    like the original and marked with a `deep.redrive` header naming the dead letter."""
    group = redrive_group(topic)
    # Starting a producer with the transactional id completes (or aborts) an earlier run's transaction
    # first, so the committed offsets read next include everything that run re-drove.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=group, linger_ms=5)
    await producer.start()
    report = RedriveReport()
    try:
        async with KafkaTools(bootstrap) as kafka:
            tps = await kafka.partitions(topic)
            done = await _redriven_up_to(kafka, group, tps)
            firsts, ends = await kafka.reader.beginning_offsets(tps), await kafka.reader.end_offsets(tps)
            starts = {tp: max(firsts[tp], done.get(tp.partition, 0)) for tp in tps}
            pending = sum(max(ends[tp] - starts[tp], 0) for tp in tps)
            budget = pending if limit is None else min(limit, pending)
            advance = track(f"re-driving {topic}", budget)
            kafka.reader.assign(tps)
            for tp in tps:
                chunk: list[ConsumerRecord[bytes, bytes]] = []
                async for record in records_between(kafka.reader, tp, starts[tp], ends[tp]):
                    if report.passed + len(chunk) >= budget:
                        break
                    chunk.append(record)
                    if len(chunk) == REDRIVE_CHUNK:
                        await _redrive_chunk(producer, group, tp, chunk, to, report)
                        advance(len(chunk))
                        chunk = []
                if chunk:
                    await _redrive_chunk(producer, group, tp, chunk, to, report)
                    advance(len(chunk))
        report.remaining = pending - report.passed
        return report
    finally:
        await producer.stop()


async def _redrive_chunk(
    producer: AIOKafkaProducer,
    group: str,
    tp: TopicPartition,
    chunk: list[ConsumerRecord[bytes, bytes]],
    to: str | None,
    report: RedriveReport,
) -> None:
    """One transaction: the chunk's records re-produced and the group's offset moved past the chunk."""
    counts: dict[str, int] = {}
    unreadable = partial = 0
    async with producer.transaction():
        for record in chunk:
            entry = _read_letter(record, redriven=False)
            # Nothing to re-drive, or not all of it: moved past like the others.
            if entry.letter is None:
                unreadable += 1
                continue
            if entry.letter.original_bytes is not None:
                partial += 1
                continue
            target = to or entry.letter.source_topic
            marker = f"{tp.topic}:{tp.partition}:{record.offset}".encode()
            key = encode_key(entry.letter.key) if entry.letter.key is not None else None
            await producer.send(
                target, original_value(entry.letter), key=key, headers=[(REDRIVE_HEADER, marker)]
            )
            counts[target] = counts.get(target, 0) + 1
        await producer.send_offsets_to_transaction({tp: chunk[-1].offset + 1}, group)
    report.unreadable += unreadable
    report.partial += partial
    for target, count in counts.items():
        report.redriven += count
        report.by_target[target] = report.by_target.get(target, 0) + count


# Control plane status (PostgreSQL) ---------------------------------------------------------------------
