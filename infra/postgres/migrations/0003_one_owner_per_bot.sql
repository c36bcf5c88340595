-- A bot is registered by one owner at a time: two owners holding tokens of the same bot would run it twice
-- (two gateway sessions, every event processed twice). A revoked registration does not count, so a bot whose
-- token was reset can move to a new owner.
CREATE UNIQUE INDEX bot_tokens_live_bot_uq ON bot_tokens (bot_user_id) WHERE status <> 'revoked';
