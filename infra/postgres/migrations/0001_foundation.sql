-- Foundation: owners and their credentials, agent configurations, custodial bot tokens, deployments,
-- per-user relationships, usage metering, the transactional outbox and the token access audit.
-- Deleting an owner cascades to everything they own (erasure); the audit trail deliberately outlives tokens.

CREATE TABLE owners (
    owner_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (name <> ''),
    tier       text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'pro', 'business', 'enterprise')),
    role       text NOT NULL DEFAULT 'owner' CHECK (role IN ('owner', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id   uuid NOT NULL REFERENCES owners (owner_id) ON DELETE CASCADE,
    -- Only a hash is stored; the key itself is shown once at creation.
    key_hash   text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
CREATE INDEX api_keys_owner_idx ON api_keys (owner_id);

CREATE TABLE agent_configurations (
    config_id  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id   uuid NOT NULL REFERENCES owners (owner_id) ON DELETE CASCADE,
    agent_name text NOT NULL CHECK (agent_name <> ''),
    -- Character profile, AI, behaviour and tools in one validated document.
    config     jsonb NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'suspended')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_configurations_owner_idx ON agent_configurations (owner_id);

CREATE TABLE bot_tokens (
    token_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id        uuid NOT NULL REFERENCES owners (owner_id) ON DELETE CASCADE,
    bot_user_id     text,
    bot_username    text,
    -- Envelope encryption: key_id names the vault key, never the token itself.
    key_id          text NOT NULL,
    ciphertext      bytea NOT NULL,
    nonce           bytea NOT NULL,
    tier            text NOT NULL DEFAULT 'lite' CHECK (tier IN ('lite', 'standard', 'premium')),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'degraded', 'failed', 'revoked')),
    failure_count   integer NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    rate_limit_hits integer NOT NULL DEFAULT 0 CHECK (rate_limit_hits >= 0),
    guilds_count    integer NOT NULL DEFAULT 0 CHECK (guilds_count >= 0),
    last_validated  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_tokens_owner_idx ON bot_tokens (owner_id);
CREATE INDEX bot_tokens_pool_idx ON bot_tokens (tier, status);

CREATE TABLE agent_deployments (
    deployment_id  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    config_id      uuid NOT NULL REFERENCES agent_configurations (config_id) ON DELETE CASCADE,
    guild_id       text NOT NULL,
    token_id       uuid REFERENCES bot_tokens (token_id),
    text_channels  text[] NOT NULL DEFAULT '{}',
    voice_channels text[] NOT NULL DEFAULT '{}',
    dm_enabled     boolean NOT NULL DEFAULT true,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'error')),
    deployed_at    timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_deployments_config_idx ON agent_deployments (config_id);
CREATE INDEX agent_deployments_guild_idx ON agent_deployments (guild_id);
CREATE INDEX agent_deployments_token_idx ON agent_deployments (token_id);

CREATE TABLE agent_user_relationships (
    relationship_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    deployment_id         uuid NOT NULL REFERENCES agent_deployments (deployment_id) ON DELETE CASCADE,
    user_id               text NOT NULL,
    affinity_score        integer NOT NULL DEFAULT 50 CHECK (affinity_score BETWEEN 0 AND 100),
    interaction_count     integer NOT NULL DEFAULT 0 CHECK (interaction_count >= 0),
    positive_interactions integer NOT NULL DEFAULT 0 CHECK (positive_interactions >= 0),
    negative_interactions integer NOT NULL DEFAULT 0 CHECK (negative_interactions >= 0),
    last_interaction      timestamptz,
    -- What the agent learned about the user; erased with the user.
    preferences           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(preferences) = 'object'),
    first_met             timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (deployment_id, user_id)
);
CREATE INDEX agent_user_relationships_affinity_idx
    ON agent_user_relationships (deployment_id, affinity_score DESC);
-- Erasure of one user across every deployment.
CREATE INDEX agent_user_relationships_user_idx ON agent_user_relationships (user_id);

CREATE TABLE usage_counters (
    owner_id uuid NOT NULL REFERENCES owners (owner_id) ON DELETE CASCADE,
    period   text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    ai_calls bigint NOT NULL DEFAULT 0 CHECK (ai_calls >= 0),
    PRIMARY KEY (owner_id, period)
);

-- Rows written in the same transaction as the state they announce; a relay publishes them to Kafka.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    topic        text NOT NULL CHECK (topic <> ''),
    key          bytea,
    value        bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

-- No foreign key: the audit trail must survive the token it describes.
CREATE TABLE token_access_audit (
    id       bigserial PRIMARY KEY,
    token_id uuid NOT NULL,
    actor    text NOT NULL CHECK (actor <> ''),
    action   text NOT NULL CHECK (action <> ''),
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX token_access_audit_token_idx ON token_access_audit (token_id, at);
