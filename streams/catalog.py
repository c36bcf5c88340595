"""The topic catalog: every topic, its key, its value model, who writes and who reads it.

`deep topics apply` makes the broker match this file. Topics that hold one guild's state are
co-partitioned: same key, same partition count (GUILD_PARTITIONS), so a guild's events, its
configuration and the results for it meet on one worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.actions import Action
from models.analytics import OwnerAnalyticsAnswer, OwnerAnalyticsQuery, StatsRequest
from models.decisions import Decision
from models.deployments import RoutingRecord
from models.erasure import AnalyticsExportAnswer, AnalyticsExportRequest, ErasureAck, ErasureControl
from models.events import EventEnvelope
from models.inference import InferenceRequest, InferenceResult
from models.operations import DeadLetter, ModerationAudit, OwnerNotification
from models.tiers import InferenceLane
from models.tokens import TokenHealthEvent
from settings import load_retention
from streams.codec import Codec
from streams.sealing import DataKeys, PayloadSealing, sealed_document

GUILD_PARTITIONS = 12
BOT_PARTITIONS = 12

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# The environment's retention settings (DEEP_RETENTION_*): `deep topics apply` sets them on the broker.
RETENTION = load_retention()
# How long a compacted topic (the processors' changelogs) keeps a value after a newer one replaced it
# (DEEP_ERASURE_COMPACTION_MS).
ERASED_WITHIN_MS = RETENTION.erased_within_ms


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    value: Any
    partitions: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    compacted: bool = False
    retention_ms: int | None = None
    # The largest record the topic takes (its `max.message.bytes`); None: the broker's default, 1 MiB.
    max_record_bytes: int | None = None
    # The personal fields its records carry sealed (streams/sealing.py); None: it holds none.
    sealing: PayloadSealing[Any] | None = field(default=None, compare=False)
    codec: Codec[Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", Codec(self.value))

    async def sealed_value(self, payload: Any, keys: DataKeys) -> bytes:
        """A payload's record value on this topic, its personal fields sealed. A sealed payload is written
        straight from its sealed document: validating that into a model only to encode it again cost more
        than the sealing itself (an inference request's prompt holds dozens of nested models)."""
        document = await sealed_document(payload, self.sealing, keys)
        return self.codec.encode(payload) if document is None else self.codec.encode_document(document)

    def name_in(self, namespace: str) -> str:
        return f"{namespace}{self.name}" if namespace else self.name

    def broker_config(self) -> dict[str, str]:
        config = {"max.message.bytes": str(self.max_record_bytes)} if self.max_record_bytes else {}
        if self.compacted:
            # A superseded value (an erased user's, say) is gone within ERASED_WITHIN_MS (plus the cleaner's
            # backoff, LOG_CLEANER_BACKOFF_MS in infra/stack/kafka.py): the active segment is rolled and
            # cleaned once its oldest record is that old, whatever the dirty ratio. A deletion's marker (its
            # key may name the user) stays as long again: a reader replaying the changelog from the start (a
            # recovering worker) must still see it.
            return config | {
                "cleanup.policy": "compact",
                "min.compaction.lag.ms": "0",
                "segment.ms": str(ERASED_WITHIN_MS),
                "max.compaction.lag.ms": str(ERASED_WITHIN_MS),
                "delete.retention.ms": str(ERASED_WITHIN_MS),
            }
        config["cleanup.policy"] = "delete"
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        return config


# A large community's GUILD_CREATE is one dispatch of a megabyte or more (channels, threads, roles, emoji),
# larger again once its personal fields are sealed. Consumers need no larger fetches: a fetch returns a
# record larger than it asked for when it is the first.
DISCORD_EVENT_MAX_BYTES = 16 * 1024 * 1024

DISCORD_EVENTS = TopicSpec(
    name="discord.events",
    key="guild id, or dm:<bot id> for direct messages",
    value=EventEnvelope,
    partitions=GUILD_PARTITIONS,
    retention_ms=RETENTION.events_days * DAY_MS,
    max_record_bytes=DISCORD_EVENT_MAX_BYTES,
    producers=("gateways",),
    consumers=("processors", "sinks", "jobs.replay"),
)

# What an action says to or of a member (a reply's or a command answer's words, a poll they asked, a track
# they asked for, what is spoken to them) and an action on a member (ban, kick, warning: the member's id, the
# reason and the report naming them) are sealed under the key of the member answered or acted on
# (processors/emit.py); an action about no one member (a routine's post, an event's) stays clear.
ACTION_SEALING = PayloadSealing[Any](
    kind="discord.action",
    fields={
        "about_user_id": None,
        "user_id": None,
        "content": "",
        "embed": None,
        "poll": None,
        "text": "",
        "track": "",
        "reason": "",
        "report": None,
    },
    subject=lambda action: action.about_user_id or getattr(action, "user_id", None),
    record_id=lambda action: action.action_id,
)

DISCORD_ACTIONS = TopicSpec(
    name="discord.actions",
    key="bot id (the partition decides which gateway runner owns the bot)",
    value=Action,
    partitions=BOT_PARTITIONS,
    retention_ms=DAY_MS,
    producers=("processors",),
    consumers=("gateways", "sinks"),
    sealing=ACTION_SEALING,
)

AGENT_DEPLOYMENTS = TopicSpec(
    name="agent.deployments",
    key="guild id, or dm:<bot id>",
    value=RoutingRecord,
    partitions=GUILD_PARTITIONS,
    compacted=True,
    producers=("outbox relay (deep api)",),
    consumers=("processors", "gateways"),
)

# Whose message each decision was about.
DECISION_SEALING = PayloadSealing[Decision](
    kind="agent.decision",
    fields={"author_id": None},
    subject=lambda decision: decision.author_id,
    record_id=lambda decision: f"{decision.event_id}:{decision.deployment_id}",
)

AGENT_DECISIONS = TopicSpec(
    name="agent.decisions",
    key="guild id, or dm:<bot id>",
    value=Decision,
    partitions=GUILD_PARTITIONS,
    retention_ms=7 * DAY_MS,
    producers=("processors",),
    consumers=("sinks", "jobs.replay"),
    sealing=DECISION_SEALING,
)

# A prompt holds members' recent messages and names, and the memories and question recalled for the one
# answered; a completion may quote them. Both are sealed under the answered user's key, but for each prompt
# turn and each recalled memory of another member, sealed under its author's key: erasing a member leaves
# their lines and memories out of the records answering others. A post the agent makes on its own (a routine,
# a story beat) answers no one: its request and result are sealed under the bot's own key, the members' turns
# and memories still under theirs, so the channel's history it carries is erased with its authors too.
INFERENCE_REQUEST_SEALING = PayloadSealing[InferenceRequest](
    kind="inference.request",
    fields={
        "messages": [],
        "memory": None,
        "knowledge": None,
        "target.author_id": None,
        "target.greet_as": None,
    },
    subject=lambda request: request.target.author_id or request.target.bot_id,
    record_id=lambda request: request.request_id,
    item_owners={"messages": lambda message: message.get("author_id")},
)
INFERENCE_RESULT_SEALING = PayloadSealing[InferenceResult](
    kind="inference.result",
    fields={"text": "", "knowledge": None, "recalled": [], "target.author_id": None, "target.greet_as": None},
    subject=lambda result: result.target.author_id or result.target.bot_id,
    record_id=lambda result: result.request_id,
    item_owners={"recalled": lambda note: note.get("author_id")},
)

INFERENCE_LANES: dict[InferenceLane, TopicSpec] = {
    lane: TopicSpec(
        name=f"inference.requests.{lane.value}",
        key="deployment id",
        value=InferenceRequest,
        partitions=6,
        retention_ms=DAY_MS,
        producers=("processors",),
        consumers=("inference workers",),
        sealing=INFERENCE_REQUEST_SEALING,
    )
    for lane in InferenceLane
}

INFERENCE_RESULTS = TopicSpec(
    name="inference.results",
    key="guild id, or dm:<bot id>",
    value=InferenceResult,
    partitions=GUILD_PARTITIONS,
    retention_ms=DAY_MS,
    producers=("inference workers",),
    consumers=("processors", "sinks"),
    sealing=INFERENCE_RESULT_SEALING,
)

TOKENS_HEALTH = TopicSpec(
    name="tokens.health",
    key="token id",
    value=TokenHealthEvent,
    partitions=3,
    retention_ms=30 * DAY_MS,
    producers=("gateways", "token health checks"),
    consumers=("api", "sinks"),
)

# The moderated member, who moderated them and why.
AUDIT_SEALING = PayloadSealing[ModerationAudit](
    kind="moderation.audit",
    fields={"user_id": None, "moderator_id": None, "reason": ""},
    subject=lambda audit: audit.user_id,
    record_id=lambda audit: audit.audit_id,
)

MODERATION_AUDIT = TopicSpec(
    name="moderation.audit",
    key="guild id",
    value=ModerationAudit,
    partitions=6,
    retention_ms=30 * DAY_MS,
    producers=("processors",),
    consumers=("sinks",),
    sealing=AUDIT_SEALING,
)

# Answered by the sinks process: the one process that holds the (embedded) ClickHouse.
ANALYTICS_REQUESTS = TopicSpec(
    name="analytics.requests",
    key="guild id",
    value=StatsRequest,
    partitions=3,
    retention_ms=DAY_MS,
    producers=("processors",),
    consumers=("sinks",),
)

# The owner console's analytics: the API asks, the sinks process (ClickHouse's holder) answers under the
# request id; every API replica reads every answer and keeps those it is waiting for.
ANALYTICS_QUERIES = TopicSpec(
    name="analytics.queries",
    key="owner id",
    value=OwnerAnalyticsQuery,
    partitions=3,
    retention_ms=HOUR_MS,
    producers=("api",),
    consumers=("sinks",),
)

ANALYTICS_ANSWERS = TopicSpec(
    name="analytics.answers",
    key="request id",
    value=OwnerAnalyticsAnswer,
    partitions=3,
    retention_ms=HOUR_MS,
    producers=("sinks",),
    consumers=("api",),
)

# What an owner is shown of a report whose reporter was erased: the clear record's message.
REPORT_BY_ERASED_MEMBER = "A member reported a message of this deployment; their data was erased since."

# A report names its reporter and quotes their reason: sealed under the reporter's key. A notification about
# no one (a revoked token, a spent quota) stays clear.
NOTIFICATION_SEALING = PayloadSealing[OwnerNotification](
    kind="owner.notification",
    fields={"message": REPORT_BY_ERASED_MEMBER, "about_user_id": None},
    subject=lambda notification: notification.about_user_id,
    record_id=lambda notification: notification.notification_id,
)

OWNER_NOTIFICATIONS = TopicSpec(
    name="owner.notifications",
    key="owner id",
    value=OwnerNotification,
    partitions=3,
    retention_ms=30 * DAY_MS,
    producers=("processors", "inference workers", "gateways"),
    consumers=("api",),
    sealing=NOTIFICATION_SEALING,
)

# Erasure control: the job writes one record to every partition, the worker owning a partition erases the
# user from that partition's tables; the job deletes the records once every partition acknowledged.
PRIVACY_ERASURES = TopicSpec(
    name="privacy.erasures",
    key="erasure id (written to each partition explicitly)",
    value=ErasureControl,
    partitions=GUILD_PARTITIONS,
    retention_ms=DAY_MS,
    producers=("erasure job",),
    consumers=("processors", "sinks"),
)

PRIVACY_ERASURE_ACKS = TopicSpec(
    name="privacy.erasure.acks",
    key="erasure id",
    value=ErasureAck,
    partitions=1,
    retention_ms=7 * DAY_MS,
    producers=("processors", "sinks"),
    consumers=("erasure job",),
)

# An access export's request names its user, and the answer holds the user's rows in ClickHouse (ids, kinds,
# times): both sealed under the user's key, so the user's erasure leaves neither readable.
EXPORT_SEALING = PayloadSealing[AnalyticsExportRequest](
    kind="privacy.export",
    fields={"user_id": None},
    subject=lambda request: request.user_id,
    record_id=lambda request: str(request.export_id),
)
EXPORT_ANSWER_SEALING = PayloadSealing[AnalyticsExportAnswer](
    kind="privacy.export.answer",
    fields={"user_id": None, "rows": {}},
    subject=lambda answer: answer.user_id,
    record_id=lambda answer: str(answer.export_id),
)

PRIVACY_EXPORTS = TopicSpec(
    name="privacy.exports",
    key="export id",
    value=AnalyticsExportRequest,
    partitions=1,
    retention_ms=DAY_MS,
    producers=("export job",),
    consumers=("sinks",),
    sealing=EXPORT_SEALING,
)

# Kept only as long as an export waits.
PRIVACY_EXPORT_ANSWERS = TopicSpec(
    name="privacy.export.answers",
    key="export id",
    value=AnalyticsExportAnswer,
    partitions=1,
    retention_ms=HOUR_MS,
    producers=("sinks",),
    consumers=("export job",),
    sealing=EXPORT_ANSWER_SEALING,
)


def dead_letter_topic(source: TopicSpec) -> TopicSpec:
    """Where a consumer of `source` puts the records it cannot process."""
    return TopicSpec(
        name=f"deadletter.{source.name}",
        key="the source record's key",
        value=DeadLetter,
        partitions=3,
        retention_ms=RETENTION.dead_letters_days * DAY_MS,
        producers=tuple(source.consumers),
        consumers=("deep deadletter",),
    )


_CONSUMED = (
    DISCORD_EVENTS,
    DISCORD_ACTIONS,
    AGENT_DEPLOYMENTS,
    AGENT_DECISIONS,
    INFERENCE_RESULTS,
    TOKENS_HEALTH,
    MODERATION_AUDIT,
    ANALYTICS_REQUESTS,
    PRIVACY_ERASURES,
    PRIVACY_EXPORTS,
    ANALYTICS_QUERIES,
    *INFERENCE_LANES.values(),
)
DEAD_LETTERS: dict[str, TopicSpec] = {spec.name: dead_letter_topic(spec) for spec in _CONSUMED}

CATALOG: tuple[TopicSpec, ...] = (
    DISCORD_EVENTS,
    DISCORD_ACTIONS,
    AGENT_DEPLOYMENTS,
    AGENT_DECISIONS,
    *INFERENCE_LANES.values(),
    INFERENCE_RESULTS,
    TOKENS_HEALTH,
    MODERATION_AUDIT,
    ANALYTICS_REQUESTS,
    ANALYTICS_QUERIES,
    ANALYTICS_ANSWERS,
    OWNER_NOTIFICATIONS,
    PRIVACY_ERASURES,
    PRIVACY_ERASURE_ACKS,
    PRIVACY_EXPORTS,
    PRIVACY_EXPORT_ANSWERS,
    *DEAD_LETTERS.values(),
)
