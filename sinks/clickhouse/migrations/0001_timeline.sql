-- The event timeline: one table per topic the sinks copy, partitioned by day and ordered by time first,
-- because every dashboard query filters a time range. Ids are Discord snowflakes kept as text ('' when
-- absent). Message content, interaction tokens and free text users wrote are never stored: only sizes.
-- The sinks insert with deduplication tokens; non_replicated_deduplication_window makes a MergeTree
-- remember the last blocks' tokens so a re-sent batch is dropped (and with it its materialized views).

CREATE TABLE IF NOT EXISTS {database}.events
(
    event_id String,
    bot_id String,
    shard_id UInt32,
    guild_id String,
    channel_id String,
    type LowCardinality(String),
    sequence UInt64,
    received_at DateTime64(3, 'UTC'),
    author_id String,
    author_is_bot Bool,
    content_length UInt32,
    mention_count UInt32,
    is_reply Bool
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (received_at, bot_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.decisions
(
    event_id String,
    deployment_id UUID,
    agent_id UUID,
    guild_id String,
    channel_id String,
    message_id String,
    author_id String,
    respond Bool,
    reason LowCardinality(String),
    priority LowCardinality(String),
    decided_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(decided_at)
ORDER BY (decided_at, deployment_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.inference_usage
(
    request_id String,
    event_id String,
    deployment_id UUID,
    agent_id UUID,
    owner_id UUID,
    bot_id String,
    guild_id String,
    tier LowCardinality(String),
    lane LowCardinality(String),
    model LowCardinality(String),
    prompt_tokens UInt64,
    completion_tokens UInt64,
    latency_ms Float64,
    cost_usd Float64,
    cached Bool,
    fallback Bool,
    failed Bool,
    completed_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(completed_at)
ORDER BY (completed_at, tier)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.actions
(
    action_id String,
    kind LowCardinality(String),
    bot_id String,
    guild_id String,
    channel_id String,
    deployment_id String,
    cause_event_id String,
    content_length UInt32,
    created_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(created_at)
ORDER BY (created_at, kind)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.moderation_audit
(
    audit_id String,
    deployment_id UUID,
    guild_id String,
    channel_id String,
    user_id String,
    moderator_id String,
    source LowCardinality(String),
    rule LowCardinality(String),
    actions Array(LowCardinality(String)),
    reason String,
    message_id String,
    at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(at)
ORDER BY (at, guild_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {database}.token_health
(
    token_id UUID,
    bot_user_id String,
    owner_id Nullable(UUID),
    status LowCardinality(String),
    reason LowCardinality(String),
    detail String,
    at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(at)
ORDER BY (at, token_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- Written by the lag sampler, not from a topic.
CREATE TABLE IF NOT EXISTS {database}.consumer_lag
(
    sampled_at DateTime64(3, 'UTC'),
    group LowCardinality(String),
    topic LowCardinality(String),
    partition UInt32,
    committed_offset Int64,
    end_offset Int64,
    lag Int64
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(sampled_at)
ORDER BY (sampled_at, group, topic, partition);
