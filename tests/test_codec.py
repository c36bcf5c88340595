"""Every payload survives the codec; bad records fail with a CodecError saying why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from models.actions import (
    AnswerInteraction,
    Attachment,
    Ban,
    Embed,
    EmbedField,
    InteractionResponse,
    SendMessage,
)
from models.agent import AgentConfig
from models.analytics import Bucket, OwnerAnalyticsAnswer, OwnerAnalyticsQuery, StatsRequest, StatsWindow
from models.decisions import Decision, DecisionReason, Priority
from models.deployments import DeployedAgent, Deployment, RoutingRecord
from models.erasure import (
    AnalyticsExportAnswer,
    AnalyticsExportRequest,
    ErasureAck,
    ErasureComponent,
    ErasureControl,
)
from models.events import EventEnvelope
from models.inference import ChatMessage, InferenceRequest, InferenceResult, ReplyTarget
from models.operations import DeadLetter, ModerationAudit, OwnerNotification
from models.tiers import InferenceLane, Tier
from models.tokens import TokenHealthEvent, TokenStatus
from streams.catalog import (
    AGENT_DECISIONS,
    AGENT_DEPLOYMENTS,
    ANALYTICS_ANSWERS,
    ANALYTICS_QUERIES,
    ANALYTICS_REQUESTS,
    CATALOG,
    DISCORD_ACTIONS,
    DISCORD_EVENTS,
    INFERENCE_LANES,
    INFERENCE_RESULTS,
    MODERATION_AUDIT,
    OWNER_NOTIFICATIONS,
    PRIVACY_ERASURE_ACKS,
    PRIVACY_ERASURES,
    PRIVACY_EXPORT_ANSWERS,
    PRIVACY_EXPORTS,
    TOKENS_HEALTH,
    TopicSpec,
)
from streams.codec import CodecError, encode_key, key_partitioner

LUNA = AgentConfig.model_validate(json.loads((Path(__file__).parent / "fixtures/luna_seed.json").read_text()))
TARGET = ReplyTarget(bot_id="1", guild_id="2", channel_id="3", message_id="4", author_id="5")
IDS = {"deployment_id": uuid4(), "agent_id": uuid4(), "owner_id": uuid4()}

SAMPLES: list[tuple[TopicSpec, object]] = [
    (
        DISCORD_EVENTS,
        EventEnvelope(
            event_id="1:s:7",
            bot_id="1",
            guild_id="2",
            channel_id="3",
            type="MESSAGE_CREATE",
            sequence=7,
            data={
                "id": "4",
                "content": "héllo 👋",
                "author": {"id": "5", "username": "ann"},
                "nested": [1, None],
            },
        ),
    ),
    (
        DISCORD_ACTIONS,
        SendMessage(action_id="a", bot_id="1", channel_id="3", content="hi", embed=Embed(title="t")),
    ),
    (DISCORD_ACTIONS, Ban(action_id="b", bot_id="1", guild_id="2", user_id="5", reason="spam")),
    (
        DISCORD_ACTIONS,
        InteractionResponse(
            action_id="c", bot_id="1", interaction_id="9", interaction_token="tok", content="ok"
        ),
    ),
    (
        DISCORD_ACTIONS,
        InteractionResponse(
            action_id="d",
            bot_id="1",
            interaction_id="9",
            interaction_token="tok",
            embed=Embed(fields=[EmbedField(name="Messages", value="3")], image_url="attachment://a.png"),
            attachment=Attachment(filename="a.png", content_type="image/png", data=b"\x89PNG\r\n\x00\xff"),
        ),
    ),
    (
        ANALYTICS_REQUESTS,
        StatsRequest(
            action_id="e",
            bot_id="1",
            guild_id="2",
            deployment_id=str(IDS["deployment_id"]),
            cause_event_id="1:s:8",
            window=StatsWindow.month,
            until=datetime(2026, 12, 6, tzinfo=UTC),
            answer=AnswerInteraction(interaction_id="9", interaction_token="tok"),
        ),
    ),
    (
        AGENT_DEPLOYMENTS,
        RoutingRecord(
            key="2",
            version=3,
            deployments=[
                DeployedAgent(
                    deployment=Deployment(guild_id="2", bot_id="1", token_id=uuid4(), **IDS),
                    agent=LUNA,
                    owner_tier=Tier.business,
                )
            ],
        ),
    ),
    (
        AGENT_DECISIONS,
        Decision(
            event_id="e",
            respond=True,
            reason=DecisionReason.mentioned,
            priority=Priority.high,
            deployment_id=IDS["deployment_id"],
            agent_id=IDS["agent_id"],
        ),
    ),
    (
        INFERENCE_LANES[InferenceLane.premium],
        InferenceRequest(
            request_id="r",
            event_id="e",
            tier=Tier.business,
            lane=InferenceLane.premium,
            priority=Priority.high,
            model="gpt-4-turbo",
            messages=[ChatMessage(role="system", content="be Luna"), ChatMessage(role="user", content="hi")],
            target=TARGET,
            **IDS,
        ),
    ),
    (
        INFERENCE_RESULTS,
        InferenceResult(
            request_id="r",
            event_id="e",
            tier=Tier.free,
            lane=InferenceLane.free,
            target=TARGET,
            text="hey~",
            model="m",
            prompt_tokens=10,
            completion_tokens=3,
            latency_ms=12.5,
            cost_usd=0.0001,
            **IDS,
        ),
    ),
    (
        TOKENS_HEALTH,
        TokenHealthEvent(token_id=uuid4(), bot_user_id="1", status=TokenStatus.revoked, reason="close_4004"),
    ),
    (
        MODERATION_AUDIT,
        ModerationAudit(
            audit_id="m",
            deployment_id=uuid4(),
            guild_id="2",
            user_id="5",
            source="automod",
            rule="links",
            actions=["delete", "warn"],
        ),
    ),
    (
        OWNER_NOTIFICATIONS,
        OwnerNotification(
            notification_id="n", owner_id=uuid4(), kind="ai_quota_exceeded", message="over quota"
        ),
    ),
    (
        ANALYTICS_QUERIES,
        OwnerAnalyticsQuery(
            request_id="q",
            owner_id=uuid4(),
            deployments={uuid4(): uuid4()},
            agent_ids=[uuid4()],
            start=datetime(2026, 1, 1, tzinfo=UTC),
            end=datetime(2026, 1, 2, tzinfo=UTC),
            bucket=Bucket.hour,
        ),
    ),
    (ANALYTICS_ANSWERS, OwnerAnalyticsAnswer(request_id="q", error="ClickHouse failed")),
    (PRIVACY_ERASURES, ErasureControl(erasure_id=uuid4(), user_id="42")),
    (
        PRIVACY_ERASURE_ACKS,
        ErasureAck(erasure_id=uuid4(), component=ErasureComponent.processors, partition=3, removed=2),
    ),
    (PRIVACY_EXPORTS, AnalyticsExportRequest(export_id=uuid4(), user_id="42")),
    (
        PRIVACY_EXPORT_ANSWERS,
        AnalyticsExportAnswer(
            export_id=uuid4(),
            user_id="42",
            rows={"events": [{"author_id": "42", "received_at": "2026-12-06T09:00:00"}]},
        ),
    ),
]


@pytest.mark.parametrize(("spec", "value"), SAMPLES, ids=lambda v: getattr(v, "name", type(v).__name__))
def test_round_trip(spec: TopicSpec, value: object) -> None:
    raw = spec.codec.encode(value)
    assert isinstance(raw, bytes)
    assert spec.codec.decode(raw) == value


def test_every_catalog_topic_has_a_sample_or_is_a_dead_letter() -> None:
    sampled = {spec.name for spec, _ in SAMPLES}
    for spec in CATALOG:
        assert spec.name in sampled or spec.name.startswith(("deadletter.", "inference.requests."))


def test_dead_letter_round_trip() -> None:
    spec = next(s for s in CATALOG if s.name == "deadletter.discord.events")
    value = DeadLetter(
        source_topic="discord.events",
        partition=1,
        offset=42,
        key="2",
        value="{bad",
        value_encoding="utf-8",
        error="not JSON",
        consumer="processors",
        failed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert spec.codec.decode(spec.codec.encode(value)) == value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (None, "empty value"),
        (orjson.dumps({"schema_version": 2, "event_id": "e"}), "schema_version 2"),
        (
            orjson.dumps({"event_id": "e", "bot_id": "1", "type": "X", "sequence": 1, "data": {}}),
            "schema_version None",
        ),
        (
            orjson.dumps(
                {"schema_version": 1, "event_id": "e", "bot_id": "1", "type": "X", "sequence": -1, "data": {}}
            ),
            "invalid sequence",
        ),
    ],
)
def test_bad_records_raise_codec_error(raw: bytes | None, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        DISCORD_EVENTS.codec.decode(raw)


def test_unknown_action_kind_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="invalid"):
        DISCORD_ACTIONS.codec.decode(
            orjson.dumps({"schema_version": 1, "kind": "nuke", "action_id": "a", "bot_id": "1"})
        )


@pytest.mark.parametrize("partitions", [1, 12, 24])
def test_a_key_goes_where_the_default_partitioner_puts_it(partitions: int) -> None:
    everyone = list(range(partitions))
    keys = [str(1_000_000_000_000_000_000 + n * 4_194_304 * 7919) for n in range(300)] + ["dm:42", ""]
    for _ in range(2):  # the second time from what the partitioner remembers
        for key in keys:
            raw = encode_key(key)
            assert key_partitioner(raw, everyone, everyone) == DefaultPartitioner()(raw, everyone, everyone)


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert {key_partitioner(None, list(range(12)), [3, 7]) for _ in range(50)} <= {3, 7}
