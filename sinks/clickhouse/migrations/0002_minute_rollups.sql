-- Per-minute rollups for the long-range panels, kept by materialized views at insert time. The targets
-- keep a deduplication window too: a deduplicated source insert then also skips the views' inserts
-- (deduplicate_blocks_in_dependent_materialized_views, on by default), so a replayed batch never
-- double counts here either.

CREATE TABLE IF NOT EXISTS {database}.events_per_minute
(
    minute DateTime('UTC'),
    type LowCardinality(String),
    events SimpleAggregateFunction(sum, UInt64),
    content_bytes SimpleAggregateFunction(sum, UInt64),
    bots AggregateFunction(uniq, String),
    guilds AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, type)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.events_per_minute_mv TO {database}.events_per_minute AS
SELECT
    toStartOfMinute(received_at) AS minute,
    type,
    count() AS events,
    sum(content_length) AS content_bytes,
    uniqState(bot_id) AS bots,
    uniqStateIf(guild_id, guild_id != '') AS guilds
FROM {database}.events
GROUP BY minute, type;

CREATE TABLE IF NOT EXISTS {database}.decisions_per_minute
(
    minute DateTime('UTC'),
    respond Bool,
    reason LowCardinality(String),
    priority LowCardinality(String),
    decisions UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, respond, reason, priority)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.decisions_per_minute_mv TO {database}.decisions_per_minute AS
SELECT toStartOfMinute(decided_at) AS minute, respond, reason, priority, count() AS decisions
FROM {database}.decisions
GROUP BY minute, respond, reason, priority;

CREATE TABLE IF NOT EXISTS {database}.actions_per_minute
(
    minute DateTime('UTC'),
    kind LowCardinality(String),
    actions UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, kind)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.actions_per_minute_mv TO {database}.actions_per_minute AS
SELECT toStartOfMinute(created_at) AS minute, kind, count() AS actions
FROM {database}.actions
GROUP BY minute, kind;

CREATE TABLE IF NOT EXISTS {database}.inference_per_minute
(
    minute DateTime('UTC'),
    tier LowCardinality(String),
    lane LowCardinality(String),
    model LowCardinality(String),
    requests UInt64,
    prompt_tokens UInt64,
    completion_tokens UInt64,
    cost_usd Float64,
    latency_ms_sum Float64,
    cached UInt64,
    fallbacks UInt64,
    failures UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, tier, lane, model)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.inference_per_minute_mv TO {database}.inference_per_minute AS
SELECT
    toStartOfMinute(completed_at) AS minute,
    tier,
    lane,
    model,
    count() AS requests,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cost_usd) AS cost_usd,
    sum(latency_ms) AS latency_ms_sum,
    countIf(cached) AS cached,
    countIf(fallback) AS fallbacks,
    countIf(failed) AS failures
FROM {database}.inference_usage
GROUP BY minute, tier, lane, model;
