-- The message an event is about. Every bot in a guild receives the same message as an event of its own, so
-- a guild's messages are counted by message id, not by event ('' for events that are not about a message,
-- and for rows written before this column existed).

ALTER TABLE {database}.events ADD COLUMN IF NOT EXISTS message_id String DEFAULT '';
