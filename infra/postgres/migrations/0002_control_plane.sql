-- Control plane: imported character documents, per-key routing versions, deployment uniqueness,
-- token health scheduling and the outbox wake-up for the relay.

-- An imported character keeps its original document (and PNG) so that export returns every field we
-- have no place for, unchanged. NULL for agents created natively.
ALTER TABLE agent_configurations
    ADD COLUMN import_format     text CHECK (import_format IN ('chara_card_v2', 'chara_card_v3', 'eliza')),
    ADD COLUMN import_extensions jsonb CHECK (import_extensions IS NULL OR jsonb_typeof(import_extensions) = 'object'),
    ADD COLUMN import_image      bytea;

-- One row per routing key (a guild id or dm:<bot id>). Bumping the version row-locks the key until
-- commit, so two writers of one guild take turns and their outbox rows are ordered like their versions.
CREATE TABLE routing_versions (
    key     text PRIMARY KEY CHECK (key <> ''),
    version bigint NOT NULL CHECK (version > 0)
);

-- An agent is deployed once per guild, and a bot wears one persona per guild.
CREATE UNIQUE INDEX agent_deployments_agent_guild_uq ON agent_deployments (config_id, guild_id);
CREATE UNIQUE INDEX agent_deployments_bot_guild_uq ON agent_deployments (token_id, guild_id);

-- Adding the token of a bot the owner already has replaces its ciphertext (a token reset), so the
-- deployments that use it keep working.
CREATE UNIQUE INDEX bot_tokens_owner_bot_uq ON bot_tokens (owner_id, bot_user_id);

-- Health checks are claimed by moving this forward (FOR UPDATE SKIP LOCKED), so replicas never
-- check one token twice.
ALTER TABLE bot_tokens ADD COLUMN next_health_check timestamptz NOT NULL DEFAULT now();
CREATE INDEX bot_tokens_health_due_idx ON bot_tokens (next_health_check) WHERE status <> 'revoked';

-- Wake the relay at commit instead of waiting for its poll. The channel names the schema, so relays
-- of separate schemas (tests) do not wake each other.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
