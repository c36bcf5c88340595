-- Whether the owner lets Parquet exports carry their guilds' message content (`deep jobs export parquet`).
-- Off by default: exports hold ids, kinds and times, and members' words only where every owner with a bot
-- in the guild turned this on.
ALTER TABLE owners ADD COLUMN content_exports boolean NOT NULL DEFAULT false;
