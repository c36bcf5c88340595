"""Make the broker match the catalog: create missing topics, add partitions, set configs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Int16, Int32, Schema, String

from streams.catalog import CATALOG, TopicSpec


@dataclass(frozen=True)
class TopicState:
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class TopicPlan:
    """What must change for one topic; empty `changes` means it already matches."""

    topic: str
    create: bool = False
    grow_to: int | None = None
    set_config: bool = False
    changes: tuple[str, ...] = ()


def plan_topic(spec: TopicSpec, name: str, current: TopicState | None) -> TopicPlan:
    """Compare the broker's topic with the spec (pure). Kafka cannot remove partitions, so a topic with
    more partitions than the catalog says is left as it is."""
    if current is None:
        return TopicPlan(name, create=True, changes=(f"create with {spec.partitions} partitions",))
    changes = []
    grow_to = spec.partitions if current.partitions < spec.partitions else None
    if grow_to is not None:
        changes.append(f"partitions {current.partitions} -> {grow_to}")
    wanted = spec.broker_config()
    drift = [key for key, value in wanted.items() if current.config.get(key) != value]
    changes.extend(f"{key} {current.config.get(key)} -> {wanted[key]}" for key in drift)
    return TopicPlan(name, grow_to=grow_to, set_config=bool(drift), changes=tuple(changes))


async def _current_state(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, TopicState]:
    existing = set(await admin.list_topics())
    present = [name for name in names if name in existing]
    if not present:
        return {}
    partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(present)}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in present]
    configs: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            entries = resource["config_entries"]
            configs[resource["resource_name"]] = {e["config_names"]: e["config_value"] for e in entries}
    return {name: TopicState(partitions[name], configs.get(name, {})) for name in present}


async def _wait_visible(
    admin: AIOKafkaAdminClient, partitions: dict[str, int], within_s: float = 30.0
) -> None:
    """Created topics and added partitions reach the metadata a moment after the broker answers; wait
    until every topic shows at least its partitions, so that the next apply (or the first producer) sees
    them and does not try to add them again."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        listed = set(await admin.list_topics())
        present = [name for name in partitions if name in listed]
        if len(present) == len(partitions):
            described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(present)}
            if all(described.get(name, 0) >= count for name, count in partitions.items()):
                return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics not visible with their partitions after {within_s}s: {partitions}")
        await asyncio.sleep(0.1)


TOPIC_ALREADY_EXISTS = 36


def _raise_errors(pairs: Iterable[tuple[str, int]]) -> None:
    for topic, code in pairs:
        if code:
            raise for_code(code)(f"topic {topic}")


async def apply_catalog(
    bootstrap: str, namespace: str = "", catalog: tuple[TopicSpec, ...] = CATALOG
) -> list[TopicPlan]:
    """Apply the catalog to the broker; returns the plans that changed something (empty: it matched)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="deep-topics")
    await admin.start()
    try:
        specs = {spec.name_in(namespace): spec for spec in catalog}
        state = await _current_state(admin, list(specs))
        plans = [plan_topic(spec, name, state.get(name)) for name, spec in specs.items()]
        plans = [plan for plan in plans if plan.changes]
        to_create = [
            NewTopic(p.topic, specs[p.topic].partitions, 1, topic_configs=specs[p.topic].broker_config())
            for p in plans
            if p.create
        ]
        to_grow = {p.topic: NewPartitions(p.grow_to) for p in plans if p.grow_to is not None}
        to_configure = [
            ConfigResource(ConfigResourceType.TOPIC, p.topic, specs[p.topic].broker_config())
            for p in plans
            if p.set_config
        ]
        if to_create:
            response = await admin.create_topics(to_create)
            # A process started at the same moment may have created one first: it is there either way.
            _raise_errors((t[0], t[1]) for t in response.topic_errors if t[1] != TOPIC_ALREADY_EXISTS)
            await _wait_visible(admin, {topic.name: topic.num_partitions for topic in to_create})
        if to_grow:
            await admin.create_partitions(to_grow)
            await _wait_visible(admin, {name: grow.total_count for name, grow in to_grow.items()})
        if to_configure:
            for response in await admin.alter_configs(to_configure):
                _raise_errors((r[3], r[0]) for r in response.resources)
        return plans
    finally:
        await admin.close()


async def delete_namespace(bootstrap: str, namespace: str) -> list[str]:
    """Delete every topic under a namespace (a finished sandbox or test run): the catalog's and whatever
    else was created there, Faust changelogs included. Returns what went."""
    if not namespace:
        raise ValueError("refusing to delete the production topics: give a namespace")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="deep-topics")
    await admin.start()
    try:
        names = sorted(name for name in await admin.list_topics() if name.startswith(namespace))
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


class _LeaveGroupResponseV3(Response):
    API_KEY = 13
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        (
            "members",
            Array(
                ("member_id", String("utf-8")), ("group_instance_id", String("utf-8")), ("error_code", Int16)
            ),
        ),
    )


class _LeaveGroupRequestV3(RequestStruct):
    API_KEY = 13
    API_VERSION = 3
    RESPONSE_TYPE = _LeaveGroupResponseV3
    SCHEMA = Schema(
        ("group", String("utf-8")),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")))),
    )


class _RemoveStaticMember(Request[_LeaveGroupRequestV3]):
    """LeaveGroup v3 naming a member by its group instance id (KIP-345): what an admin client's "remove
    members from consumer group" sends. aiokafka's own LeaveGroup stops at v1, which has no instance id."""

    API_KEY = 13

    def __init__(self, group_id: str, instance_id: str) -> None:
        self._group_id = group_id
        self._instance_id = instance_id

    def build(self, request_struct_class: type[_LeaveGroupRequestV3]) -> _LeaveGroupRequestV3:
        # An empty member id: the broker finds the member by its instance id.
        return request_struct_class(self._group_id, [("", self._instance_id)])


async def leave_group(bootstrap: str, group_id: str, instance_id: str) -> None:
    """Take a static member out of its group now. A static member does not leave when it stops (so that a
    restart takes its partitions straight back); a planned stop calls this so the others get them at once
    rather than after its session times out."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        coordinator = await admin.find_coordinator(group_id)
        # No public way to send a request to one broker; this is how the admin client sends its own.
        response = await admin._send_request_to_node(coordinator, _RemoveStaticMember(group_id, instance_id))
    finally:
        await admin.close()
    for code in [response.error_code, *(code for _, _, code in response.members)]:
        if code:
            raise for_code(code)(f"leaving group {group_id} as {instance_id}")
